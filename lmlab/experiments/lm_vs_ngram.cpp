// Experiment "lm_vs_ngram" (experiments/brown-baseline.json): train the Llama-style model on Brown and
// compare its held-out loss with unigram and bigram baselines on the same tokens; samples, curves,
// report. Stages: spec -> variants (the one model) -> runs -> measurements -> verdict (pure) -> report.
#include "lmlab/experiments/lm_vs_ngram.h"

#include <cmath>

#include "lmlab/core/node.h"
#include "lmlab/infer/generate.h"
#include "lmlab/lab/exp_common.h"
#include "lmlab/experiments/ngram.h"
#include "lmlab/lab/plot.h"
#include "lmlab/train/checkpoint.h"
#include "lmlab/train/corpus.h"

namespace lmlab::lm_vs_ngram {

using exp::fixed;
using exp::json_or;

// ======== 1. spec ========

struct Spec {
  int64_t vocab = 4096;
  nlohmann::json model, train;
  std::vector<std::string> prompts;
  int64_t sample_tokens = 60;
  double minutes = 0;  // time budget of the training, minutes (0: none)
  uint64_t seed = 1;
  Rules rules;
};

Spec parse_spec(const ExperimentContext& ctx) {
  const auto& s = ctx.settings;
  Spec p;
  p.vocab = json_or<int64_t>(s, "vocab_size", 4096);
  p.model = s.at("model");
  p.train = s.at("train");
  p.prompts = json_or<std::vector<std::string>>(s, "prompts", {"The jury said", "In the morning", "He looked at the"});
  p.sample_tokens = json_or<int64_t>(s, "sample_tokens", 60);
  p.minutes = ctx.minutes > 0 ? ctx.minutes : json_or<double>(p.train, "time_budget_s", 0.0) / 60.0;
  p.seed = json_or<uint64_t>(p.train, "seed", 1);
  p.rules.far_below_nats = json_or<double>(ctx.spec, "far_below_nats", p.rules.far_below_nats);
  return p;
}

// ======== 2. variants: the one model ========

TrainConfig model_config(const Spec& p, const CorpusMeta& corpus, uint64_t seed) {
  const auto& ms = p.model;
  const auto& ts = p.train;
  TrainConfig cfg;
  exp::use_corpus(cfg, corpus, seed);
  cfg.model.hidden_size = ms.at("hidden_size").get<int64_t>();
  cfg.model.num_hidden_layers = ms.at("num_hidden_layers").get<int64_t>();
  cfg.model.num_attention_heads = ms.at("num_attention_heads").get<int64_t>();
  cfg.model.num_key_value_heads = json_or<int64_t>(ms, "num_key_value_heads", cfg.model.num_attention_heads);
  cfg.model.intermediate_size = ms.at("intermediate_size").get<int64_t>();
  cfg.context = ms.at("context").get<int64_t>();
  cfg.model.max_position_embeddings = cfg.context;
  cfg.model.tie_word_embeddings = json_or<bool>(ms, "tie_word_embeddings", true);
  cfg.batch_size = ts.at("batch_size").get<int64_t>();
  cfg.steps = ts.at("steps").get<int64_t>();
  cfg.lr = json_or<double>(ts, "lr", 1e-3);
  cfg.min_lr = json_or<double>(ts, "min_lr", cfg.lr / 10);
  cfg.warmup = json_or<int64_t>(ts, "warmup", 100);
  cfg.weight_decay = json_or<double>(ts, "weight_decay", 0.1);
  cfg.eval_every = json_or<int64_t>(ts, "eval_every", 200);
  cfg.eval_batches = json_or<int64_t>(ts, "eval_batches", 20);
  cfg.ckpt_every = json_or<int64_t>(ts, "ckpt_every", 0);
  cfg.log_every = json_or<int64_t>(ts, "log_every", 1);
  cfg.time_budget_s = p.minutes * 60.0;
  cfg.precision = json_or<std::string>(ts, "precision", "f32");
  return cfg;
}

// ======== 3. runs -> 4. measurements ========

struct Extras {  // what the report shows beyond the figures (the first seed's)
  TrainConfig cfg;
  TrainRunResult run;
  CorpusMeta corpus;
  std::vector<std::pair<std::string, std::string>> samples;
};

Measurements measure(const ExperimentContext& ctx, const Spec& p, uint64_t seed, Extras* first) {
  auto log = [&](const std::string& m) { if (ctx.log) ctx.log(m); };
  CorpusMeta corpus = ensure_brown_corpus(ctx.runs_dir + "/data/brown-v" + std::to_string(p.vocab), p.vocab, log);
  TrainConfig cfg = model_config(p, corpus, seed);
  TrainRunResult tr = exp::train_variant(ctx, cfg, "model");

  log("evaluating on the full val and test splits");
  Transformer model(cfg.model);
  load_model_weights(model, tr.checkpoint);
  NgramResult ng_val = ngram_baselines(corpus.shard(0), corpus.shard(1));
  NgramResult ng_test = ngram_baselines(corpus.shard(0), corpus.shard(2));
  Measurements m;
  m.figures["val_loss"] = exp::shard_loss(model, corpus.shard(1), cfg.context, cfg.batch_size);
  m.figures["test_loss"] = exp::shard_loss(model, corpus.shard(2), cfg.context, cfg.batch_size);
  m.figures["bigram_val"] = ng_val.bigram_loss;
  m.figures["unigram_val"] = ng_val.unigram_loss;
  m.figures["bigram_test"] = ng_test.bigram_loss;
  m.figures["unigram_test"] = ng_test.unigram_loss;
  m.figures["bigram_lambda"] = ng_val.bigram_lambda;
  m.figures["steps"] = double(tr.steps);
  m.figures["tokens"] = double(tr.tokens);
  m.figures["seconds"] = tr.seconds;
  m.figures["tokens_per_s"] = tr.tokens_per_s;
  m.figures["parameters"] = double(tr.parameters);
  m.figures["stopped_on_clock"] = tr.stopped_on_clock ? 1 : 0;
  m.figures["run_id"] = double(tr.run_id);
  RunRegistry reg = RunRegistry::open(ctx.registry_path);
  for (const char* k : {"train/loss", "val/loss"}) {
    Measurements::Curve c;
    for (auto& [st, v] : reg.metric_series(tr.run_id, k)) c.x.push_back(double(st)), c.y.push_back(v);
    m.curves[k] = c;
  }
  if (first && first->run.run_id == 0) {
    first->cfg = cfg;
    first->run = tr;
    first->corpus = corpus;
    Tokenizer tok = Tokenizer::from_file(tr.checkpoint + "/tokenizer.json");
    for (size_t i = 0; i < p.prompts.size(); ++i) {
      GenerateOptions go;
      go.max_new_tokens = p.sample_tokens;
      go.sampler.temperature = 0.8;
      go.sampler.top_k = 40;
      go.sampler.top_p = 0.95;
      go.sampler.min_p = 0.05;
      go.sampler.seed = 1000 + i;
      go.eos_id = corpus.eot_id;
      first->samples.emplace_back(p.prompts[i], generate_text(model, tok, p.prompts[i], go).text);
    }
  }
  return m;
}

// ======== 5. verdict (pure) ========

std::vector<Claim> verdict(const Measured& m, const Rules& r) {
  auto gap = [](const Measurements& s) { return s.get("bigram_val") - s.get("val_loss"); };
  std::string ours = str_cat("val loss: model ", m.show("val_loss", 4), ", bigram ", m.show("bigram_val", 4),
                             " nats/token; the model is ", format_spread(spread_of(per_seed(m, gap)), 4), " below (perplexity ",
                             format_spread(spread_of(per_seed(m, [](const Measurements& s) { return std::exp(s.get("val_loss")); })), 1),
                             " vs ", format_spread(spread_of(per_seed(m, [](const Measurements& s) { return std::exp(s.get("bigram_val")); })), 1), ")");
  return {
      decide("", "A neural LM reaches a held-out loss far below a bigram model trained on the same tokens.",
             str_cat("(bigram val loss - model val loss) - ", r.far_below_nats, " nats/token: far below = at least ",
                     r.far_below_nats, " nats/token lower (a perplexity at most ", fixed(100 * std::exp(-r.far_below_nats), 0),
                     "% of the bigram's)"),
             ours, per_seed(m, [&](const Measurements& s) { return gap(s) - r.far_below_nats; })),
      decide("", "...at least below it.", "bigram val loss - model val loss", ours, per_seed(m, gap)),
  };
}

// ======== 6. report ========

ExperimentResult report(const ExperimentContext& ctx, const Spec& p, exp::ExperimentRun& run, const Measured& m,
                        const std::vector<Claim>& claims, const Extras& x) {
  const std::string& out = run.out;
  const TrainConfig& cfg = x.cfg;
  const bool bands = m.seeds.size() > 1;
  auto bpb = [&](const std::string& fig, int split) {
    return format_spread(spread_of(per_seed(m, [&](const Measurements& s) {
                           return s.get(fig) / std::log(2.0) / x.corpus.bytes_per_token(split);
                         })),
                         4);
  };
  PlotSpec ps;
  ps.title = "Brown: loss vs step";
  ps.xlabel = "optimizer step";
  ps.ylabel = "cross-entropy (nats/token)";
  ps.series = {m.curve("train/loss", "train loss"), m.curve("val/loss", str_cat("val loss (", cfg.eval_batches, " batches)"))};
  ps.hlines = {{"unigram (val)", m.spread("unigram_val").mean}, {"bigram (val)", m.spread("bigram_val").mean}};
  std::vector<std::pair<std::string, std::string>> plots;
  plots.emplace_back(plot_svg(ps, out + "/loss_curve.svg"),
                     str_cat("Training loss per step and periodic val loss, with the n-gram baselines",
                             bands ? " (mean; band: lowest to highest seed)." : "."));
  BarSpec bs;
  bs.title = "Brown val: cross-entropy per token";
  bs.ylabel = "nats/token (lower is better)";
  bs.labels = {"unigram", "bigram", "lmlab model"};
  for (const char* f : {"unigram_val", "bigram_val", "val_loss"}) {
    Spread s = m.spread(f);
    bs.values.push_back(s.mean);
    if (bands) bs.lo.push_back(s.min), bs.hi.push_back(s.max);
  }
  plots.emplace_back(plot_bars_svg(bs, out + "/val_loss_bars.svg"), "Val cross-entropy of the baselines and the model.");

  nlohmann::ordered_json r = exp::results_head(ctx, run.id, m);
  r["training_run_ids"] = m.values("run_id");
  r["per_seed"] = exp::figures_json(m);
  r["claims"] = claims_json(claims);
  r["samples"] = nlohmann::json::array();
  for (auto& [pr, t] : x.samples) r["samples"].push_back({{"prompt", pr}, {"continuation", t}});
  r["corpus"] = {{"dir", x.corpus.dir}, {"vocab_size", x.corpus.vocab_size}, {"train_tokens", x.corpus.tokens[0]},
                 {"val_tokens", x.corpus.tokens[1]}, {"test_tokens", x.corpus.tokens[2]}};
  r["config"] = nlohmann::json::parse(cfg.to_json());

  Report rep("brown-baseline: a small Llama-style LM on the Brown corpus vs n-gram baselines");
  rep.add_paragraph(ctx.spec.value("description", ""));
  exp::add_run_facts(rep, ctx, run.id, m);
  std::string ids;
  for (double id : m.values("run_id")) ids += (ids.empty() ? "" : ", ") + fixed(id, 0);
  rep.add_kv("training runs", ids);
  rep.add_kv("parameters", fixed(m.spread("parameters").mean, 0));
  rep.add_kv("trained for", str_cat(format_duration(m.spread("seconds").mean), " (", m.show("steps", 0), " steps, ",
                                    m.show("tokens", 0), " tokens, ", m.show("tokens_per_s", 0), " tokens/s)"));
  if (p.minutes > 0) {
    Spread clock = m.spread("stopped_on_clock");
    rep.add_kv("time budget", str_cat(format_duration(p.minutes * 60), " of training, a deadline: ", m.show("steps", 0),
                                      " steps fit", clock.max == 1 ? " (stopped on the clock after the step in progress)" : " (the step count was reached first)",
                                      "; the final evaluation, the n-gram baselines and the samples come after it"));
  }
  rep.add_kv("model", str_cat("d=", cfg.model.hidden_size, ", ", cfg.model.num_hidden_layers, " layers, ", cfg.model.num_attention_heads,
                              " heads, SwiGLU ", cfg.model.intermediate_size, ", context ", cfg.context, ", vocab ", x.corpus.vocab_size));
  rep.add_heading(2, "Held-out loss");
  rep.add_table({"model", "val nats/token", "val bits/byte", "test nats/token", "test bits/byte"},
                {{"unigram (add-k)", m.show("unigram_val", 4), bpb("unigram_val", 1), m.show("unigram_test", 4), bpb("unigram_test", 2)},
                 {"bigram (interpolated)", m.show("bigram_val", 4), bpb("bigram_val", 1), m.show("bigram_test", 4), bpb("bigram_test", 2)},
                 {"lmlab transformer", m.show("val_loss", 4), bpb("val_loss", 1), m.show("test_loss", 4), bpb("test_loss", 2)}});
  rep.add_heading(2, "The claim beside ours");
  add_claims(rep, claims);
  rep.add_paragraph(exp::seeds_sentence(m) +
                    " The n-gram smoothing weights were chosen on the evaluation split itself, which flatters the baselines.");
  for (const auto& [pth, cap] : plots) rep.add_plot(pth, cap);
  rep.add_heading(2, "Samples (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05; first seed)");
  for (auto& [pr, t] : x.samples) rep.add_code(pr + t);
  exp::add_rerun(rep, ctx);

  nlohmann::json summary = {{"val_loss", m.spread("val_loss").mean}, {"bigram_val", m.spread("bigram_val").mean}};
  std::vector<std::string> highlights = {
      str_cat("trained ", format_duration(m.spread("seconds").mean), ": ", m.show("steps", 0), " steps",
              p.minutes > 0 && m.spread("stopped_on_clock").max == 1 ? str_cat(" (stopped on the clock: that many fit in ", format_duration(p.minutes * 60), ")") : "",
              ", ", m.show("tokens", 0), " tokens, ", fixed(m.spread("parameters").mean, 0), " parameters"),
      str_cat("val loss (nats/token): model ", m.show("val_loss", 4), "  bigram ", m.show("bigram_val", 4), "  unigram ",
              m.show("unigram_val", 4))};
  for (auto& [pr, t] : x.samples) highlights.push_back("sample: " + pr + t);
  return exp::finish(run, rep, r, plots, summary, highlights, claims);
}

}  // namespace lmlab::lm_vs_ngram

namespace lmlab {
namespace {

ExperimentResult run_lm_vs_ngram(ExperimentContext& ctx) {
  using namespace lm_vs_ngram;
  Spec spec = parse_spec(ctx);                                  // 1. spec (2. variants: the one model)
  exp::ExperimentRun run = exp::open_experiment_run(ctx);
  Extras first;
  Measured m;
  try {
    m = exp::over_seeds(ctx, spec.seed, [&](uint64_t seed) {  // 3. runs -> 4. measurements
      return measure(ctx, spec, seed, &first);
    });
  } catch (const std::exception& e) {
    exp::fail_experiment_run(run, e.what());
    throw;
  }
  std::vector<Claim> claims = verdict(m, spec.rules);           // 5. verdict
  return report(ctx, spec, run, m, claims, first);              // 6. report
}

const bool registered = register_experiment_kind("lm_vs_ngram", &run_lm_vs_ngram);

}  // namespace
}  // namespace lmlab
