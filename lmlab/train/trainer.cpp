// Trainer implementation.
#include "lmlab/train/trainer.h"

#include "lmlab/nn/kda.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unistd.h>

#include "lmlab/core/node.h"
#include "lmlab/models/model_check.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/train/checkpoint.h"

namespace lmlab {

namespace {
std::atomic<bool> g_stop{false};
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void Trainer::request_stop() { g_stop.store(true); }
bool Trainer::stop_requested() { return g_stop.load(); }
void Trainer::clear_stop() { g_stop.store(false); }

// ---- config ----
std::string TrainConfig::to_json() const {
  nlohmann::ordered_json j;
  j["model"] = nlohmann::json::parse(model.to_json());
  j["train_data"] = train_data;
  j["val_data"] = val_data;
  j["val_bytes_per_token"] = val_bytes_per_token;
  j["batch_size"] = batch_size;
  j["context"] = context;
  j["grad_accum"] = grad_accum;
  j["steps"] = steps;
  j["lr"] = lr;
  j["min_lr"] = min_lr;
  j["warmup"] = warmup;
  j["weight_decay"] = weight_decay;
  j["beta1"] = beta1;
  j["beta2"] = beta2;
  j["eps"] = eps;
  j["grad_clip"] = grad_clip;
  j["eval_every"] = eval_every;
  j["eval_batches"] = eval_batches;
  j["ckpt_every"] = ckpt_every;
  j["log_every"] = log_every;
  j["keep_last"] = keep_last;
  j["seed"] = seed;
  j["time_budget_s"] = time_budget_s;
  j["precision"] = precision;
  j["out_dir"] = out_dir;
  j["moe_aux_loss_coef"] = moe_aux_loss_coef;
  j["moe_z_loss_coef"] = moe_z_loss_coef;
  j["moe_bias_update_rate"] = moe_bias_update_rate;
  return j.dump(2);
}

TrainConfig TrainConfig::from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[train] '", source, "' is not valid JSON: ", e.what()));
  }
  LMLAB_CHECK(j.is_object(), ConfigError, "[train] '", source, "' must be a JSON object");
  TrainConfig c;
  static const std::set<std::string> known = {
      "model", "train_data", "val_data", "val_bytes_per_token", "batch_size", "context", "grad_accum", "steps",
      "lr", "min_lr", "warmup", "weight_decay", "beta1", "beta2", "eps", "grad_clip", "eval_every", "eval_batches",
      "ckpt_every", "log_every", "keep_last", "seed", "time_budget_s", "precision", "out_dir",
      "moe_aux_loss_coef", "moe_z_loss_coef", "moe_bias_update_rate"};
  for (auto it = j.begin(); it != j.end(); ++it)
    LMLAB_CHECK(known.count(it.key()), ConfigError, "[train] '", source, "' has unknown field '", it.key(), "'");
  if (j.contains("model")) c.model = TransformerConfig::from_json(j["model"].dump(), source + ": model");
  auto str = [&](const char* f, std::string& d) {
    if (!j.contains(f)) return;
    LMLAB_CHECK(j[f].is_string(), ConfigError, "[train] '", source, "' field '", f, "' must be a string");
    d = j[f].get<std::string>();
  };
  auto integer = [&](const char* f, int64_t& d) {
    if (!j.contains(f)) return;
    LMLAB_CHECK(j[f].is_number_integer(), ConfigError, "[train] '", source, "' field '", f, "' must be an integer, got ",
                j[f].dump());
    d = j[f].get<int64_t>();
  };
  auto num = [&](const char* f, double& d) {
    if (!j.contains(f)) return;
    LMLAB_CHECK(j[f].is_number(), ConfigError, "[train] '", source, "' field '", f, "' must be a number, got ",
                j[f].dump());
    d = j[f].get<double>();
  };
  str("train_data", c.train_data);
  str("val_data", c.val_data);
  str("precision", c.precision);
  str("out_dir", c.out_dir);
  num("val_bytes_per_token", c.val_bytes_per_token);
  integer("batch_size", c.batch_size);
  integer("context", c.context);
  integer("grad_accum", c.grad_accum);
  integer("steps", c.steps);
  num("lr", c.lr);
  num("min_lr", c.min_lr);
  integer("warmup", c.warmup);
  num("weight_decay", c.weight_decay);
  num("beta1", c.beta1);
  num("beta2", c.beta2);
  num("eps", c.eps);
  num("grad_clip", c.grad_clip);
  integer("eval_every", c.eval_every);
  integer("eval_batches", c.eval_batches);
  integer("ckpt_every", c.ckpt_every);
  integer("log_every", c.log_every);
  int64_t kl = c.keep_last;
  integer("keep_last", kl);
  LMLAB_CHECK(kl >= 1 && kl <= 1000000, ConfigError, "[train] '", source, "' keep_last must be in [1, 1000000], got ", kl);
  c.keep_last = int(kl);
  int64_t seed = int64_t(c.seed);
  integer("seed", seed);
  c.seed = uint64_t(seed);
  num("time_budget_s", c.time_budget_s);
  num("moe_aux_loss_coef", c.moe_aux_loss_coef);
  num("moe_z_loss_coef", c.moe_z_loss_coef);
  num("moe_bias_update_rate", c.moe_bias_update_rate);
  c.validate();
  return c;
}

void TrainConfig::validate() const {
  model.validate();
  LMLAB_CHECK(batch_size > 0, ConfigError, "[train] batch_size must be positive, got ", batch_size);
  // Memory before anything is allocated: f32 weights, gradients and two AdamW moments (16 bytes a
  // value), and one micro-batch's logits, held to the machine's memory.
  const double ram = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  const double state_bytes = double(model_state_numel(model)) * 16.0;
  LMLAB_CHECK(state_bytes <= ram, ConfigError, "[train] the model has ", model_state_numel(model),
              " parameters: weights, gradients and AdamW moments need ", state_bytes / 1e9,
              " GB, more than this machine's ", ram / 1e9, " GB");
  const double logit_bytes = double(batch_size) * double(context) * double(model.vocab_size) * 4.0;
  LMLAB_CHECK(logit_bytes <= ram, ConfigError, "[train] batch_size x context x vocab_size = ", batch_size, " x ",
              context, " x ", model.vocab_size, " logits need ", logit_bytes / 1e9, " GB, more than this machine's ",
              ram / 1e9, " GB");
  LMLAB_CHECK(context > 0 && context <= model.max_position_embeddings, ConfigError, "[train] context ", context,
              " must be in [1, max_position_embeddings = ", model.max_position_embeddings, "]");
  LMLAB_CHECK(grad_accum > 0, ConfigError, "[train] grad_accum must be positive, got ", grad_accum);
  LMLAB_CHECK(steps > 0, ConfigError, "[train] steps must be positive, got ", steps);
  LMLAB_CHECK(lr > 0 && min_lr >= 0 && min_lr <= lr, ConfigError, "[train] need 0 <= min_lr <= lr and lr > 0, got lr ",
              lr, " min_lr ", min_lr);
  LMLAB_CHECK(warmup >= 0, ConfigError, "[train] warmup must be >= 0");
  LMLAB_CHECK(std::isfinite(lr), ConfigError, "[train] lr must be finite, got ", lr);
  LMLAB_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, ConfigError, "[train] weight_decay must be >= 0, got ",
              weight_decay);
  LMLAB_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, ConfigError,
              "[train] beta1 and beta2 must be in [0, 1), got ", beta1, " and ", beta2);
  LMLAB_CHECK(std::isfinite(eps) && eps > 0, ConfigError, "[train] eps must be positive, got ", eps);
  LMLAB_CHECK(eval_every >= 0 && ckpt_every >= 0, ConfigError, "[train] eval_every and ckpt_every must be >= 0 (0 = off), got ",
              eval_every, " and ", ckpt_every);
  LMLAB_CHECK(eval_batches > 0, ConfigError, "[train] eval_batches must be positive, got ", eval_batches);
  LMLAB_CHECK(log_every > 0, ConfigError, "[train] log_every must be positive, got ", log_every);
  LMLAB_CHECK(keep_last >= 1, ConfigError, "[train] keep_last must be >= 1, got ", keep_last);
  LMLAB_CHECK(std::isfinite(val_bytes_per_token) && val_bytes_per_token >= 0, ConfigError,
              "[train] val_bytes_per_token must be >= 0, got ", val_bytes_per_token);
  LMLAB_CHECK(std::isfinite(time_budget_s) && time_budget_s >= 0, ConfigError,
              "[train] time_budget_s must be >= 0 (0 = none), got ", time_budget_s);
  LMLAB_CHECK(std::isfinite(grad_clip) && grad_clip >= 0, ConfigError, "[train] grad_clip must be >= 0 (0 = off)");
  LMLAB_CHECK(precision == "f32" || precision == "bf16", ConfigError, "[train] precision must be f32 or bf16, got '",
              precision, "'");
  LMLAB_CHECK(!train_data.empty(), ConfigError, "[train] train_data (a token shard) is required");
  LMLAB_CHECK(std::isfinite(moe_aux_loss_coef), ConfigError, "[train] moe_aux_loss_coef must be finite (< 0 = default)");
  LMLAB_CHECK(std::isfinite(moe_z_loss_coef) && moe_z_loss_coef >= 0, ConfigError,
              "[train] moe_z_loss_coef must be >= 0, got ", moe_z_loss_coef);
  LMLAB_CHECK(std::isfinite(moe_bias_update_rate) && moe_bias_update_rate >= 0, ConfigError,
              "[train] moe_bias_update_rate must be >= 0 (0 = off), got ", moe_bias_update_rate);
}

double TrainConfig::moe_aux_coef() const {
  if (moe_aux_loss_coef >= 0) return moe_aux_loss_coef;
  return model.output_router_logits ? model.router_aux_loss_coef : 0.0;
}

// ---- trainer ----
Trainer::Trainer(TrainConfig cfg) : cfg_(std::move(cfg)) {
  cfg_.validate();
  model_ = std::make_unique<Transformer>(cfg_.model, cfg_.seed);
  // nanoGPT's grouping: matrices (and embeddings) decay, vectors (norm gains, biases) do not.
  ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = cfg_.lr;
  decay.weight_decay = cfg_.weight_decay;
  no_decay.weight_decay = 0.0;
  for (auto& [n, p] : model_->named_parameters()) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  AdamWOptions o;
  o.lr = cfg_.lr;
  o.beta1 = cfg_.beta1;
  o.beta2 = cfg_.beta2;
  o.eps = cfg_.eps;
  o.weight_decay = cfg_.weight_decay;
  opt_ = std::make_unique<AdamW>(std::vector<ParamGroup>{decay, no_decay}, o);
  loader_ = std::make_unique<WindowLoader>(TokenShard::open(cfg_.train_data), cfg_.batch_size, cfg_.context, cfg_.seed);
  total_steps_ = cfg_.steps;
  sched_ = CosineSchedule{cfg_.lr, cfg_.min_lr, cfg_.warmup, total_steps_};
  moe_ = model_->moe_layers();
  for (auto& l : moe_) moe_window_counts_.emplace_back(size_t(l->cfg.num_experts), 0);
  moe_step_counts_ = moe_window_counts_;
}

Trainer::~Trainer() = default;

std::string Trainer::state_json() const {
  nlohmann::ordered_json j;
  j["format_version"] = 1;
  j["step"] = step_;
  j["total_steps"] = total_steps_;
  j["budget_fits"] = budget_fits_;
  j["warmup"] = sched_.warmup;
  j["schedule_total"] = sched_.total;
  j["tokens"] = tokens_;
  j["elapsed_s"] = elapsed_;
  auto ls = loader_->state();
  j["loader"] = {{"seed", ls.seed}, {"epoch", ls.epoch}, {"index", ls.index}};
  j["train_config"] = nlohmann::json::parse(cfg_.to_json());
  return j.dump(2);
}

bool Trainer::resume() {
  std::string ck = latest_checkpoint(cfg_.out_dir + "/checkpoints");
  if (ck.empty()) return false;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(ck + "/lmlab.json"));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[train] '", ck, "/lmlab.json' is not valid JSON: ", e.what()));
  }
  LMLAB_CHECK(j.value("format_version", 0) == 1, FormatError, "[train] '", ck, "/lmlab.json' has an unknown format");
  load_model_weights(*model_, ck);
  opt_->load(ck + "/optimizer.safetensors");
  step_ = j.at("step").get<int64_t>();
  total_steps_ = j.at("total_steps").get<int64_t>();
  budget_fits_ = j.at("budget_fits").get<int>();
  tokens_ = j.at("tokens").get<int64_t>();
  elapsed_ = j.at("elapsed_s").get<double>();
  loader_->set_state({j["loader"]["seed"].get<uint64_t>(), j["loader"]["epoch"].get<uint64_t>(),
                      j["loader"]["index"].get<uint64_t>()});
  // The tokenizer travels with the checkpoints, not in the train config: a resumed run takes it
  // from the checkpoint it resumes, so the checkpoints it writes are as complete as the first ones.
  if (cfg_.tokenizer_json.empty() && std::filesystem::exists(ck + "/tokenizer.json"))
    cfg_.tokenizer_json = read_text_file(ck + "/tokenizer.json");
  sched_.total = j.value("schedule_total", total_steps_);
  sched_.warmup = j.at("warmup").get<int64_t>();
  return true;
}

namespace {
// The first non-finite router logit of a recorded forward, as a message; "" when all are finite.
std::string nonfinite_logits(const RouterStats& st) {
  std::vector<float> v = st.logits.to_vector<float>();
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      return str_cat(std::isnan(v[i]) ? "NaN" : "Inf", " in the router logits of layer ", st.layer, " (token ", int64_t(i) / st.logits.size(1), ", expert ",
                     int64_t(i) % st.logits.size(1), ")");
  return "";
}
}  // namespace

double Trainer::train_step() {
  double lr = sched_.at(step_);
  opt_->set_lr(lr);
  double loss_sum = 0;
  const int64_t step_no = step_ + 1;  // the number on_step reports for this step
  const bool moe = !moe_.empty();
  const double alpha = cfg_.moe_aux_coef(), beta = cfg_.moe_z_loss_coef;
  // Assignment counts of this step so far, per sparse layer: the f of the balance loss (global batch).
  for (auto& c : moe_step_counts_) std::fill(c.begin(), c.end(), 0);
  std::vector<std::vector<double>> prob_sum(moe_.size());  // sum over micro-batches of P_e, per layer
  double z_sum = 0;
  // bf16 mixed precision: matmuls on bf16 copies (AMX), f32 master weights and optimizer state.
  AutocastBF16 autocast(cfg_.precision == "bf16");
  for (int64_t m = 0; m < cfg_.grad_accum; ++m) {
    Batch b = loader_->next();
    std::optional<RouterStatsCollector> rs;
    if (moe) rs.emplace();
    Tensor loss;
    try {
      loss = causal_lm_loss(*model_, b.inputs, b.targets);
    } catch (const NonFiniteStateError& e) {  // a recurrent layer's state (it names the layer)
      throw Error(str_cat("[train] ", e.what(), " at step ", step_no, " (micro-batch ", m,
                          "); lower the learning rate or check the data"));
    }
    if (moe) {
      const auto& st = rs->stats();
      LMLAB_CHECK(st.size() == moe_.size(), Error, "[train] expected router statistics from ", moe_.size(),
                  " sparse layers, got ", st.size());
      for (const auto& s : st) {
        std::string bad = nonfinite_logits(s);
        LMLAB_CHECK(bad.empty(), Error, "[train] ", bad, " at step ", step_no, " (micro-batch ", m,
                    "); lower the learning rate, add moe_z_loss_coef, or check the data");
      }
      std::vector<std::vector<int64_t>> counts_so_far(st.size());
      for (size_t i = 0; i < st.size(); ++i) {
        auto& c = moe_step_counts_[i];
        LMLAB_CHECK(st[i].counts.size() == c.size(), Error, "[train] layer ", st[i].layer, " routed to ",
                    st[i].counts.size(), " experts, expected ", c.size());
        for (size_t e = 0; e < c.size(); ++e) c[e] += st[i].counts[e];
        counts_so_far[i] = c;
        std::vector<double> p = st[i].prob_mean.to_vector<double>();
        if (prob_sum[i].empty()) prob_sum[i].assign(p.size(), 0.0);
        for (size_t e = 0; e < p.size(); ++e) prob_sum[i][e] += p[e];
      }
      double lm = loss.item();
      LMLAB_CHECK(std::isfinite(lm), Error, "[train] LM loss is ", lm, " at step ", step_no, " (micro-batch ", m,
                  "); lower the learning rate or check the data");
      Tensor z = rs->z_loss();
      double zv = z.item();
      LMLAB_CHECK(std::isfinite(zv), Error, "[train] router z-loss is ", zv, " at step ", step_no,
                  " (micro-batch ", m, ")");
      z_sum += zv;
      // f from the micro-batches of this step so far: on the last one it spans the whole
      // accumulated batch (the gradient of micro-batch m cannot wait for later ones without
      // keeping every graph alive).
      if (alpha > 0) loss = add(loss, mul(rs->load_balancing_loss(counts_so_far), alpha).to(loss.dtype()));
      if (beta > 0) loss = add(loss, mul(z, beta).to(loss.dtype()));
      loss_sum += lm;
    } else {
      double lv = loss.item();
      LMLAB_CHECK(std::isfinite(lv), Error, "[train] loss is ", lv, " at step ", step_no, " (micro-batch ", m,
                  "); lower the learning rate or check the data");
      loss_sum += lv;
    }
    if (cfg_.grad_accum > 1) loss = mul(loss, 1.0 / double(cfg_.grad_accum));
    loss.backward();
  }
  if (cfg_.grad_clip > 0) clip_grad_norm(model_->parameters(), cfg_.grad_clip);
  opt_->step();
  opt_->zero_grad();
  if (moe) {
    // Aux-loss-free balancing (DeepSeek-V3): move each sigmoid router's selection bias toward the
    // mean load, from the loads of the whole step.
    if (cfg_.moe_bias_update_rate > 0)
      for (size_t i = 0; i < moe_.size(); ++i)
        if (moe_[i]->cfg.router == MoEConfig::Router::Sigmoid)
          moe_[i]->update_selection_bias(moe_step_counts_[i], cfg_.moe_bias_update_rate);
    double aux = 0;
    for (size_t i = 0; i < moe_.size(); ++i) {
      for (auto& p : prob_sum[i]) p /= double(cfg_.grad_accum);
      aux += load_balancing_value(moe_step_counts_[i], prob_sum[i]);
      for (size_t e = 0; e < moe_step_counts_[i].size(); ++e) moe_window_counts_[i][e] += moe_step_counts_[i][e];
    }
    moe_window_aux_ += aux;
    moe_window_z_ += z_sum / double(cfg_.grad_accum);
    ++moe_window_steps_;
  }
  ++step_;
  tokens_ += cfg_.batch_size * cfg_.context * cfg_.grad_accum;
  double l = loss_sum / double(cfg_.grad_accum);
  losses_.push_back(l);
  return l;
}

MoEStatsInfo Trainer::moe_stats(bool reset) {
  MoEStatsInfo info;
  info.step = step_;
  info.steps = moe_window_steps_;
  if (moe_window_steps_ > 0) {
    info.aux_loss = moe_window_aux_ / double(moe_window_steps_);
    info.z_loss = moe_window_z_ / double(moe_window_steps_);
  }
  for (size_t i = 0; i < moe_.size(); ++i)
    info.layers.push_back(summarize_moe_load(moe_[i]->layer_index, moe_window_counts_[i], moe_[i]->cfg.top_k));
  if (reset) {
    for (auto& c : moe_window_counts_) std::fill(c.begin(), c.end(), 0);
    moe_window_aux_ = moe_window_z_ = 0;
    moe_window_steps_ = 0;
  }
  return info;
}

EvalInfo Trainer::evaluate() {
  EvalInfo e;
  e.step = step_;
  if (cfg_.val_data.empty()) return e;
  NoGrad ng;
  SequentialLoader vl(TokenShard::open(cfg_.val_data), cfg_.batch_size, cfg_.context, cfg_.eval_batches);
  Batch b;
  double sum = 0;
  int64_t n = 0;
  while (vl.next(b)) {
    double l = causal_lm_loss(*model_, b.inputs, b.targets).item();
    int64_t rows = b.inputs.numel();
    sum += l * double(rows);
    n += rows;
  }
  e.val_loss = n ? sum / double(n) : 0.0;
  e.val_ppl = std::exp(e.val_loss);
  // nats per token -> bits per UTF-8 byte
  e.val_bpb = cfg_.val_bytes_per_token > 0 ? e.val_loss / std::log(2.0) / cfg_.val_bytes_per_token : 0.0;
  return e;
}

std::string Trainer::save() {
  CheckpointData d;
  d.model = model_.get();
  d.optimizer = opt_.get();
  d.tokenizer_json = cfg_.tokenizer_json;
  d.lmlab_json = state_json();
  std::string path = save_checkpoint(cfg_.out_dir + "/checkpoints", step_, d, cfg_.keep_last);
  if (on_checkpoint) on_checkpoint(path);
  return path;
}

bool Trainer::run() {
  double t_start = now_s(), elapsed0 = elapsed_;
  int64_t step0 = step_;
  double t_step2 = 0;
  const double budget = cfg_.time_budget_s;
  // A time budget is a deadline: the run stops on the clock (after the step in progress, then the
  // final evaluation and checkpoint). The schedule needs a length before that, so the step count is
  // estimated from the speed of the steps after the first two (which pay for allocation and
  // warm-up): at 10 steps, at 50, then every 100 steps as the machine's speed changes.
  if (budget > 0 && elapsed_ >= budget) {
    stopped_on_clock_ = true;
    total_steps_ = step_;
  }
  while (step_ < total_steps_) {
    if (stop_requested()) {
      elapsed_ = elapsed0 + (now_s() - t_start);
      save();
      return false;
    }
    double loss = train_step();
    double t = now_s() - t_start;
    elapsed_ = elapsed0 + t;
    const int64_t done = step_ - step0;
    if (done == 2) t_step2 = t;
    // (Once the schedule has run out before the clock, it stays at its final rate: no refits.)
    const bool schedule_open = sched_.total == total_steps_;
    if (budget > 0 && done > 2 && schedule_open &&
        (budget_fits_ < 2 ? done == (budget_fits_ == 0 ? 10 : 50) : done % 100 == 0)) {
      double per_step = (t - t_step2) / double(done - 2);
      int64_t fit = int64_t((budget - elapsed_) / std::max(per_step, 1e-9)) + step_;
      total_steps_ = std::max<int64_t>(step_ + 1, std::min<int64_t>(cfg_.steps, fit));
      sched_.total = total_steps_;
      if (budget_fits_ == 0) sched_.warmup = std::min<int64_t>(sched_.warmup, std::max<int64_t>(1, total_steps_ / 10));
      ++budget_fits_;
    }
    if (budget > 0 && elapsed_ >= budget) {  // the deadline: this step is the last
      stopped_on_clock_ = step_ < cfg_.steps;
      total_steps_ = step_;
    } else if (budget > 0 && step_ == total_steps_ && total_steps_ < cfg_.steps) {
      // The estimate ran out before the clock (the machine got faster): train on at the schedule's
      // final rate until the deadline.
      total_steps_ = cfg_.steps;
    }
    if (on_step && (step_ % cfg_.log_every == 0 || step_ == total_steps_)) {
      StepInfo s;
      s.step = step_;
      s.total_steps = total_steps_;
      s.tokens = tokens_;
      s.loss = loss;
      s.lr = opt_->groups()[0].lr;
      s.elapsed_s = elapsed_;
      double rate = double(done) / std::max(t, 1e-9);
      s.tokens_per_s = rate * double(cfg_.batch_size * cfg_.context * cfg_.grad_accum);
      s.eta_s = double(total_steps_ - step_) / std::max(rate, 1e-9);
      if (budget > 0) {
        // The clock bounds the run from the first step, before the step count is fitted.
        s.eta_s = std::min(s.eta_s, std::max(0.0, budget - elapsed_));
        if ((budget_fits_ == 0 || sched_.total != total_steps_) && step_ < total_steps_)
          s.total_steps = std::min<int64_t>(cfg_.steps, step_ + int64_t(std::max(0.0, budget - elapsed_) * rate));
      }
      on_step(s);
    }
    bool last = step_ == total_steps_;
    if (!moe_.empty() && on_moe_stats && (last || (cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0)))
      on_moe_stats(moe_stats(true));
    if (cfg_.eval_every > 0 && (step_ % cfg_.eval_every == 0 || last) && !cfg_.val_data.empty()) {
      EvalInfo e = evaluate();
      if (on_eval) on_eval(e);
    }
    if (cfg_.ckpt_every > 0 && step_ % cfg_.ckpt_every == 0 && !last) save();
  }
  save();
  return true;
}

}  // namespace lmlab
