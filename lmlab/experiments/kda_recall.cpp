// Experiment "kda_recall" (experiments/kda-recall.json; spec shared/papers/kimi-linear.md,
// "Small-scale reproduction" 2 and Fig. 4): the same tiny 2-layer model with five token mixers (softmax
// attention, KDA, GDN, DeltaNet, gated linear attention without the delta rule) trained on the synthetic
// recall tasks MQAR and palindrome (lmlab/data/synthetic_recall.h). Every mixer sees the same training
// stream (one generator seed per task and seed) and is scored on the same held-out examples; loss and
// accuracy count only the answer tokens. Stages: spec -> variants (task x mixer) -> runs -> measurements
// -> verdict (pure) -> report.
#include "lmlab/experiments/kda_recall.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <set>

#include "lmlab/core/node.h"
#include "lmlab/data/synthetic_recall.h"
#include "lmlab/lab/exp_common.h"
#include "lmlab/lab/plot.h"
#include "lmlab/ops/cross_entropy.h"
#include "lmlab/ops/reduce.h"
#include "lmlab/train/optim.h"
#include "lmlab/train/schedule.h"

namespace lmlab::kda_recall {

using exp::fixed;
using exp::json_or;

// ======== 1. spec ========

// One recall task as the experiment drives it: examples -> (tokens, answer mask).
struct RecallTask {
  std::string name;  // "mqar" | "palindrome"
  std::unique_ptr<SyntheticTask> task;
  std::function<RecallSequence(const SyntheticExample&)> seq;
  int64_t length = 0;  // tokens per example (inputs are length - 1)
};

RecallTask make_task(const nlohmann::json& j) {
  static const std::set<std::string> known = {"name", "pairs", "queries", "length"};
  LMLAB_CHECK(j.is_object() && j.contains("name"), ConfigError, "[exp kda_recall] each task needs a 'name'");
  for (auto it = j.begin(); it != j.end(); ++it)
    LMLAB_CHECK(known.count(it.key()), ConfigError, "[exp kda_recall] task has unknown field '", it.key(), "'");
  RecallTask t;
  t.name = j["name"].get<std::string>();
  if (t.name == "mqar") {
    auto m = std::make_unique<MQARTask>(json_or<int64_t>(j, "pairs", 16), json_or<int64_t>(j, "queries", 48));
    t.length = m->length();
    const MQARTask* p = m.get();
    t.seq = [p](const SyntheticExample& e) { return p->sequence(e); };
    t.task = std::move(m);
  } else if (t.name == "palindrome") {
    auto m = std::make_unique<PalindromeTask>(json_or<int64_t>(j, "length", 63));
    t.length = m->length();
    const PalindromeTask* p = m.get();
    t.seq = [p](const SyntheticExample& e) { return p->sequence(e); };
    t.task = std::move(m);
  } else {
    throw ConfigError(str_cat("[exp kda_recall] unknown task '", t.name, "' (known: mqar, palindrome)"));
  }
  return t;
}

struct Mixer {
  std::string letter, name, label;
};

struct Spec {
  nlohmann::json model;
  int64_t steps = 0, batch = 0, eval_every = 100, eval_examples = 256, warmup = 50;
  double lr = 1e-3, wd = 0.1;
  uint64_t seed = 1;
  std::vector<Mixer> mixers;
  std::vector<RecallTask> tasks;
  Rules rules;
};

Spec parse_spec(const ExperimentContext& ctx) {
  const auto& s = ctx.settings;
  const auto& ts = s.at("train");
  Spec p;
  p.model = s.at("model");
  p.steps = ts.at("steps").get<int64_t>();
  p.batch = ts.at("batch_size").get<int64_t>();
  p.eval_every = json_or<int64_t>(ts, "eval_every", 100);
  p.eval_examples = json_or<int64_t>(ts, "eval_examples", 256);
  p.lr = json_or<double>(ts, "lr", 1e-3);
  p.wd = json_or<double>(ts, "weight_decay", 0.1);
  p.warmup = json_or<int64_t>(ts, "warmup", 50);
  p.seed = json_or<uint64_t>(ts, "seed", 1);
  const nlohmann::json& mj = s.contains("mixers") ? s["mixers"] : ctx.spec.at("mixers");
  for (const auto& m : mj)
    p.mixers.push_back({m.at("pattern").get<std::string>(), m.at("name").get<std::string>(), json_or<std::string>(m, "label", "")});
  for (auto& m : p.mixers)
    if (m.label.empty()) m.label = m.name;
  const nlohmann::json& tj = s.contains("tasks") ? s["tasks"] : ctx.spec.at("tasks");
  for (const auto& t : tj) p.tasks.push_back(make_task(t));
  p.rules.thresholds = json_or<std::vector<double>>(s, "thresholds", {0.5, 0.9});
  p.rules.steps = p.steps;
  p.rules.eval_every = p.eval_every;
  for (const auto& t : p.tasks) p.rules.tasks.push_back(t.name);
  return p;
}

// ======== 2. variants: one model per (task, mixer), identical but for the token mixer ========

TransformerConfig model_config(const Spec& p, const Mixer& mx, const RecallTask& task) {
  TransformerConfig c;
  c.vocab_size = kRecallVocab;
  c.hidden_size = p.model.at("hidden_size").get<int64_t>();
  c.num_hidden_layers = p.model.at("num_hidden_layers").get<int64_t>();
  c.num_attention_heads = c.num_key_value_heads = p.model.at("num_attention_heads").get<int64_t>();
  c.intermediate_size = p.model.at("intermediate_size").get<int64_t>();
  c.max_position_embeddings = task.length;
  c.tie_word_embeddings = true;
  c.layer_pattern = mx.letter;
  c.short_conv_kernel_size = json_or<int64_t>(p.model, "short_conv_kernel_size", 4);
  return c;
}

// ======== 3. runs ========

// inputs [n, L-1], targets [n, L-1] with -100 outside the answers.
struct RecallBatch {
  Tensor inputs, targets;
};
RecallBatch make_batch(const RecallTask& t, Generator& gen, int64_t n) {
  int64_t L = t.length - 1;
  std::vector<int64_t> in(size_t(n * L)), tg(size_t(n * L), -100);
  for (int64_t i = 0; i < n; ++i) {
    RecallSequence s = t.seq(t.task->sample(gen));
    LMLAB_CHECK(int64_t(s.tokens.size()) == t.length, ValueError, "[exp kda_recall] ", t.name, " sequence of ",
                s.tokens.size(), " tokens, expected ", t.length);
    for (int64_t p = 0; p < L; ++p) {
      in[size_t(i * L + p)] = s.tokens[size_t(p)];
      if (s.is_answer[size_t(p + 1)]) tg[size_t(i * L + p)] = s.tokens[size_t(p + 1)];
    }
  }
  return {Tensor::from_vector(in, Shape{n, L}), Tensor::from_vector(tg, Shape{n, L})};
}

// Answer-token accuracy and mean loss over fixed batches.
std::pair<double, double> evaluate(const Transformer& m, const std::vector<RecallBatch>& eval) {
  NoGrad ng;
  int64_t right = 0, total = 0;
  double loss_sum = 0;
  for (const auto& b : eval) {
    Tensor logits = m.forward(b.inputs);  // [n, L, V]
    Tensor flat = logits.reshape({-1, logits.size(2)}), tg = b.targets.reshape({-1});
    CrossEntropyOptions o;
    o.reduction = Reduction::Sum;
    loss_sum += cross_entropy(flat, tg, o).item();
    std::vector<int64_t> pred = argmax(flat, 1).to_vector<int64_t>(), t = tg.to_vector<int64_t>();
    for (size_t i = 0; i < t.size(); ++i)
      if (t[i] >= 0) {
        ++total;
        right += pred[i] == t[i];
      }
  }
  return {total ? double(right) / double(total) : NAN, total ? loss_sum / double(total) : NAN};
}

struct RunResult {
  std::vector<double> steps, acc, loss;  // eval points
  double seconds = 0;
  int64_t params = 0;
  bool diverged = false;
  std::string error;
};

// Trains one mixer on one task with AdamW + warmup/cosine, evaluating every eval_every steps. A
// diverging run (non-finite loss or state) is recorded, not thrown: the other mixers still run.
RunResult train_mixer(const ExperimentContext& ctx, const Spec& p, const RecallTask& task, size_t ti, const Mixer& mx,
                      uint64_t seed, const std::vector<RecallBatch>& eval, exp::ExperimentRun& run) {
  RunResult r;
  Transformer model(model_config(p, mx, task), seed);
  model.train(true);
  r.params = model.num_parameters();
  ParamGroup decay, no_decay;
  decay.lr = no_decay.lr = p.lr;
  decay.weight_decay = p.wd;
  for (auto& [n, prm] : model.named_parameters()) (prm.dim() >= 2 ? decay : no_decay).params.push_back(prm);
  AdamWOptions o;
  o.lr = p.lr;
  o.beta1 = 0.9;
  o.beta2 = 0.98;
  o.weight_decay = p.wd;
  AdamW opt(std::vector<ParamGroup>{decay, no_decay}, o);
  CosineSchedule sched{p.lr, p.lr / 10, p.warmup, p.steps};
  Generator train_gen(seed * 7919 + ti);  // same stream for every mixer
  if (ctx.log) ctx.log(str_cat("---- ", task.name, " / ", mx.label, " (", r.params, " parameters, seed ", seed, ") ----"));
  auto t0 = std::chrono::steady_clock::now();
  try {
    for (int64_t step = 0; step <= p.steps; ++step) {
      if (step % p.eval_every == 0 || step == p.steps) {
        model.train(false);
        auto [acc, loss] = evaluate(model, eval);
        model.train(true);
        r.steps.push_back(double(step));
        r.acc.push_back(acc);
        r.loss.push_back(loss);
        std::string key = task.name + "/" + mx.name;
        run.reg.log_metrics(run.id, step, {{exp::seed_metric(ctx, seed, key + "/acc"), acc}, {exp::seed_metric(ctx, seed, key + "/loss"), loss}});
        if (ctx.progress)
          ctx.progress(str_cat(key, ": step ", step, "/", p.steps, " acc ", fixed(acc, 3), " loss ", fixed(loss, 3)));
      }
      if (step == p.steps) break;
      opt.set_lr(sched.at(step));
      RecallBatch b = make_batch(task, train_gen, p.batch);
      Tensor logits = model.forward(b.inputs);
      Tensor loss = cross_entropy(logits.reshape({-1, logits.size(2)}), b.targets.reshape({-1}));
      double lv = loss.item();
      LMLAB_CHECK(std::isfinite(lv), Error, "[exp kda_recall] ", task.name, "/", mx.name, ": loss is ", lv, " at step ", step + 1);
      loss.backward();
      clip_grad_norm(model.parameters(), 1.0);
      opt.step();
      opt.zero_grad();
    }
  } catch (const Error& e) {
    r.diverged = true;
    r.error = e.what();
    if (ctx.log) ctx.log(str_cat(task.name, "/", mx.name, " diverged: ", e.what()));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// ======== 4. measurements ========

std::string fig(const std::string& task, const std::string& mixer, const std::string& what) {
  return task + "/" + mixer + "/" + what;
}
std::string steps_to_name(double thr) { return "steps_to_" + fixed(thr, 2); }

// The accuracy at the eval point nearest to `step` at or before it.
double acc_at(const RunResult& r, double step) {
  double a = NAN;
  for (size_t i = 0; i < r.steps.size() && r.steps[i] <= step; ++i) a = r.acc[i];
  return a;
}

Measurements measure(const ExperimentContext& ctx, const Spec& p, uint64_t seed, exp::ExperimentRun& run,
                     std::vector<std::string>* errors) {
  Measurements m;
  for (size_t ti = 0; ti < p.tasks.size(); ++ti) {
    const RecallTask& task = p.tasks[ti];
    Generator eval_gen(seed * 1000003 + 17 + ti);  // held-out examples: another stream than training's
    std::vector<RecallBatch> eval;
    for (int64_t done = 0; done < p.eval_examples; done += p.batch)
      eval.push_back(make_batch(task, eval_gen, std::min(p.batch, p.eval_examples - done)));
    for (const auto& mx : p.mixers) {
      RunResult r = train_mixer(ctx, p, task, ti, mx, seed, eval, run);
      m.figures[fig(task.name, mx.name, "diverged")] = r.diverged ? 1 : 0;
      m.figures[fig(task.name, mx.name, "parameters")] = double(r.params);
      m.figures[fig(task.name, mx.name, "seconds")] = r.seconds;
      m.curves[fig(task.name, mx.name, "acc")] = {r.steps, r.acc};
      if (r.diverged) {
        errors->push_back(str_cat(task.name, "/", mx.name, " seed ", seed, ": ", r.error));
        continue;  // a diverged run's accuracies are not measurements of the mixer
      }
      m.figures[fig(task.name, mx.name, "final_acc")] = r.acc.back();
      m.figures[fig(task.name, mx.name, "final_loss")] = r.loss.back();
      m.figures[fig(task.name, mx.name, "late_gain")] = r.acc.back() - acc_at(r, 0.75 * double(p.steps));
      for (double t : p.rules.thresholds)
        for (size_t i = 0; i < r.acc.size(); ++i)
          if (r.acc[i] >= t) {
            m.figures[fig(task.name, mx.name, steps_to_name(t))] = r.steps[i];
            break;
          }
      if (ctx.log) ctx.log(str_cat(task.name, "/", mx.name, ": final accuracy ", fixed(r.acc.back(), 3), ", ", fixed(r.seconds, 0), " s"));
    }
  }
  return m;
}

// ======== 5. verdict (pure) ========

namespace {
bool diverged_in(const Measurements& s, const std::string& task, const std::string& mixer) {
  return s.get(fig(task, mixer, "diverged")) == 1;
}
// The mixers among `names` that diverged in some seed, as a note.
std::string diverged_note(const Measured& m, const std::string& task, const std::vector<std::string>& names) {
  std::string note;
  for (const auto& n : names)
    for (const auto& s : m.seeds)
      if (diverged_in(s, task, n)) note += str_cat(note.empty() ? "" : "; ", n, " diverged in seed ", s.seed);
  return note.empty() ? "" : note + ": that seed tests nothing about it";
}
}  // namespace

std::vector<Claim> verdict(const Measured& m, const Rules& r) {
  std::vector<Claim> claims;
  auto acc = [](const Measurements& s, const std::string& task, const std::string& mixer) {
    return diverged_in(s, task, mixer) ? NAN : s.get(fig(task, mixer, "final_acc"));
  };
  for (const auto& task : r.tasks) {
    auto has = [&](const std::string& mixer) { return m.has(fig(task, mixer, "diverged")); };
    auto ge = [&](const std::string& a, const std::string& b, const std::string& la, const std::string& lb, bool strict) {
      std::string rule = strict ? str_cat("final accuracy ", la, " - ", lb, " (answer tokens, held-out)")
                                : str_cat("final accuracy ", la, " - ", lb, " + ", r.tie, " (ties within ", r.tie, " count as >=)");
      std::string ours = str_cat(la, " ", m.show(fig(task, a, "final_acc"), 3), ", ", lb, " ", m.show(fig(task, b, "final_acc"), 3));
      claims.push_back(decide(task, str_cat(la, strict ? " > " : " >= ", lb), rule, ours,
                              per_seed(m, [&](const Measurements& s) { return acc(s, task, a) - acc(s, task, b) + (strict ? 0.0 : r.tie); }),
                              diverged_note(m, task, {a, b})));
    };
    if (has("softmax") && has("kda")) ge("softmax", "kda", "softmax", "KDA", false);
    if (has("kda") && has("gdn")) ge("kda", "gdn", "KDA", "GDN", false);
    if (has("gdn") && has("gla")) ge("gdn", "gla", "GDN", "GLA (no delta rule)", true);
    if (has("kda") && has("gdn")) {
      // Per seed: steps to the highest threshold either mixer reaches; "never" counts as steps + one eval.
      const double never = double(r.steps + r.eval_every);
      std::vector<double> margins;
      std::string ours;
      for (const auto& s : m.seeds) {
        double margin = NAN;
        if (!diverged_in(s, task, "kda") && !diverged_in(s, task, "gdn"))
          for (auto it = r.thresholds.rbegin(); it != r.thresholds.rend(); ++it) {
            double sk = s.get(fig(task, "kda", steps_to_name(*it))), sg = s.get(fig(task, "gdn", steps_to_name(*it)));
            if (std::isnan(sk) && std::isnan(sg)) continue;
            margin = (std::isnan(sg) ? never : sg) - (std::isnan(sk) ? never : sk);
            ours += str_cat(ours.empty() ? "" : "; ", "seed ", s.seed, " to ", fixed(*it, 2), ": KDA ",
                            std::isnan(sk) ? "never" : fixed(sk, 0), ", GDN ", std::isnan(sg) ? "never" : fixed(sg, 0));
            break;
          }
        margins.push_back(margin);
      }
      if (ours.empty()) ours = str_cat("neither reached accuracy ", fixed(r.thresholds.front(), 2), " in ", r.steps, " steps");
      claims.push_back(decide(task, "KDA reaches a given accuracy in fewer steps than GDN",
                              str_cat("steps(GDN) - steps(KDA) to the highest of the accuracies ", [&] {
                                std::string t;
                                for (double x : r.thresholds) t += (t.empty() ? "" : ", ") + fixed(x, 2);
                                return t;
                              }(), " that either reaches (never = ", r.steps, " + one eval interval)"),
                              ours, margins, diverged_note(m, task, {"kda", "gdn"})));
    }
  }
  return claims;
}

std::vector<std::string> ranking(const Measured& m, const std::string& task, const std::vector<std::string>& mixers,
                                 std::vector<std::string>* diverged) {
  std::vector<std::pair<double, std::string>> v;
  for (const auto& mx : mixers) {
    bool bad = false;
    for (const auto& s : m.seeds) bad = bad || diverged_in(s, task, mx);
    if (bad) {
      if (diverged) diverged->push_back(mx);
      continue;
    }
    v.emplace_back(m.spread(fig(task, mx, "final_acc")).mean, mx);
  }
  std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& [a, n] : v) out.push_back(n);
  return out;
}

std::string still_rising(const Measured& m, const Rules& r, const std::string& task, const std::string& mixer,
                         const std::string& label, Verdict* v) {
  std::vector<double> margins = per_seed(m, [&](const Measurements& s) { return s.get(fig(task, mixer, "late_gain")) - r.rising; });
  Verdict rv = verdict_of(margins);
  if (v) *v = rv;
  std::string gain = m.show(fig(task, mixer, "late_gain"), 3);
  switch (rv) {
    case Verdict::Held:
      return str_cat(label, "'s accuracy was still rising at the end (", gain, " over the last quarter of the steps, more than ",
                     r.rising, "): at this length of training the comparison is about speed of learning, not capacity.");
    case Verdict::DidNotHold:
      return str_cat(label, "'s accuracy had levelled off (", gain, " over the last quarter of the steps, at most ", r.rising,
                     "): more steps at this learning rate would not be expected to close the gap.");
    case Verdict::Mixed:
      return str_cat("Whether ", label, "'s accuracy was still rising is mixed across the seeds (", gain,
                     " over the last quarter of the steps).");
    case Verdict::NotTested: break;
  }
  return "";
}

// ======== 6. report ========

ExperimentResult report(const ExperimentContext& ctx, const Spec& p, exp::ExperimentRun& run, const Measured& m,
                        const std::vector<Claim>& claims, const std::vector<std::string>& errors) {
  const std::string& out = run.out;
  std::vector<std::string> mixer_names;
  for (const auto& mx : p.mixers) mixer_names.push_back(mx.name);
  auto label_of = [&](const std::string& n) {
    for (const auto& mx : p.mixers)
      if (mx.name == n) return mx.label;
    return n;
  };

  std::vector<std::pair<std::string, std::string>> plots;
  for (const auto& task : p.tasks) {
    PlotSpec ps;
    ps.title = str_cat(task.name, ": answer-token accuracy vs step");
    ps.xlabel = "optimizer step";
    ps.ylabel = "accuracy on held-out examples";
    for (const auto& mx : p.mixers) ps.series.push_back(m.curve(fig(task.name, mx.name, "acc"), mx.label));
    ps.hlines = {{"chance", task.name == "mqar" ? 1.0 / 32 : 1.0 / 62}};
    plots.emplace_back(plot_svg(ps, out + "/acc_" + task.name + ".svg"),
                       str_cat(task.name, ": accuracy on ", p.eval_examples, " held-out examples, every ", p.eval_every,
                               " steps", m.seeds.size() > 1 ? " (mean over seeds; band: lowest to highest seed)." : "."));
  }
  {
    BarSpec bs;
    bs.title = "final answer-token accuracy";
    bs.ylabel = "accuracy";
    for (const auto& task : p.tasks)
      for (const auto& mx : p.mixers) {
        Spread s = m.spread(fig(task.name, mx.name, "final_acc"));
        bs.labels.push_back(task.name + " " + mx.name);
        bs.values.push_back(s.mean);
        if (m.seeds.size() > 1) bs.lo.push_back(s.min), bs.hi.push_back(s.max);
      }
    plots.emplace_back(plot_bars_svg(bs, out + "/final_acc.svg"),
                       m.seeds.size() > 1 ? "Final accuracy (mean over seeds; bars: lowest to highest seed)."
                                          : "Final accuracy of every task and mixer.");
  }

  nlohmann::ordered_json rj = exp::results_head(ctx, run.id, m);
  rj["figures"] = nlohmann::ordered_json::object();
  for (const auto& task : p.tasks)
    for (const auto& mx : p.mixers)
      for (const char* what : {"final_acc", "final_loss", "late_gain", "diverged"}) {
        Spread s = m.spread(fig(task.name, mx.name, what));
        rj["figures"][fig(task.name, mx.name, what)] = {{"mean", s.n ? nlohmann::json(s.mean) : nlohmann::json()},
                                                       {"sd", s.n ? nlohmann::json(s.sd) : nlohmann::json()}, {"n", s.n}};
      }
  rj["per_seed"] = exp::figures_json(m);
  rj["claims"] = claims_json(claims);
  if (!errors.empty()) rj["diverged"] = errors;

  Report rep("kda-recall: synthetic recall with KDA, GDN, DeltaNet, gated linear attention and softmax attention");
  rep.add_paragraph(ctx.spec.value("description", ""));
  exp::add_run_facts(rep, ctx, run.id, m);
  rep.add_kv("model", str_cat(p.model.at("num_hidden_layers").get<int64_t>(), " layers, d = ", p.model.at("hidden_size").get<int64_t>(),
                              ", ", p.model.at("num_attention_heads").get<int64_t>(), " heads, SwiGLU ",
                              p.model.at("intermediate_size").get<int64_t>(), ", vocab 64, tied embeddings"));
  rep.add_kv("training", str_cat(p.steps, " steps, batch ", p.batch, ", AdamW lr ", p.lr, " (warmup ", p.warmup,
                                 ", cosine to lr/10), weight decay ", p.wd, ", clip 1.0; same data stream for every mixer"));
  for (const auto& t : p.tasks) rep.add_kv(t.name, str_cat(t.task->description(), " (", t.length, " tokens)"));
  rep.add_heading(2, "Final accuracy (answer tokens, held-out)");
  {
    std::vector<std::string> hdr = {"task", "mixer", "parameters", "accuracy", "loss", "gain over the last quarter"};
    for (double t : p.rules.thresholds) hdr.push_back("steps to " + fixed(t, 2) + (m.seeds.size() > 1 ? " (per seed)" : ""));
    hdr.push_back("seconds");
    std::vector<std::vector<std::string>> rows;
    for (const auto& task : p.tasks)
      for (const auto& mx : p.mixers) {
        auto f = [&](const std::string& w) { return fig(task.name, mx.name, w); };
        bool div = m.spread(f("diverged")).max == 1;
        std::vector<std::string> row = {task.name, mx.label + (div ? " (diverged)" : ""), fixed(m.spread(f("parameters")).mean, 0),
                                        m.show(f("final_acc"), 3), m.show(f("final_loss"), 3), m.show(f("late_gain"), 3)};
        for (double t : p.rules.thresholds) {  // per seed: a mean would hide the seeds that never got there
          std::string cell;
          for (double v : m.values(f(steps_to_name(t)))) cell += (cell.empty() ? "" : ", ") + (std::isnan(v) ? "never" : fixed(v, 0));
          row.push_back(cell);
        }
        row.push_back(fixed(m.spread(f("seconds")).mean, 0));
        rows.push_back(row);
      }
    rep.add_table(hdr, rows);
  }
  rep.add_heading(2, "Ranking");
  for (const auto& task : p.tasks) {
    std::vector<std::string> div;
    std::vector<std::string> rk = ranking(m, task.name, mixer_names, &div);
    std::string line;
    for (const auto& n : rk) line += (line.empty() ? "" : " > ") + str_cat(label_of(n), " (", m.show(fig(task.name, n, "final_acc"), 3), ")");
    std::string left;
    for (const auto& n : div) left += (left.empty() ? "" : ", ") + label_of(n);
    rep.add_paragraph(str_cat("**", task.name, "**: ", line.empty() ? "no mixer finished" : line, ".",
                              left.empty() ? "" : str_cat(" Left out of the ranking (diverged in at least one seed): ", left, ".")));
  }
  rep.add_heading(2, "The paper's claim beside ours");
  rep.add_paragraph(ctx.spec.value("claim", ""));
  add_claims(rep, claims, "paper (Fig. 4)");
  rep.add_paragraph(exp::seeds_sentence(m));
  rep.add_paragraph(str_cat(
      "The paper trains 2-layer, 2-head models with head dim 128 for up to 20k steps at lengths 256-2048 and "
      "picks the best of four learning rates per model; here one learning rate, ", p.steps, " steps, head dim ",
      p.model.at("hidden_size").get<int64_t>() / p.model.at("num_attention_heads").get<int64_t>(), " and shorter sequences."));
  // Softmax attention trailing KDA is read from its curve: still rising or levelled off, as measured.
  for (const auto& task : p.tasks) {
    Spread a = m.spread(fig(task.name, "softmax", "final_acc")), k = m.spread(fig(task.name, "kda", "final_acc"));
    if (a.n && k.n && a.mean < k.mean - p.rules.tie) {
      std::string s = still_rising(m, p.rules, task.name, "softmax", "Softmax attention");
      rep.add_paragraph(str_cat("On ", task.name, " softmax attention ends below KDA (", format_spread(a, 3), " vs ",
                                format_spread(k, 3), "). ", s));
    }
  }
  for (const auto& [pth, cap] : plots) rep.add_plot(pth, cap);
  for (const auto& e : errors) rep.add_paragraph(str_cat("**Diverged:** `", e, "`"));
  exp::add_rerun(rep, ctx);

  nlohmann::json summary;
  std::vector<std::string> highlights;
  for (const auto& task : p.tasks) {
    std::string line = task.name + " final accuracy:";
    for (const auto& mx : p.mixers) {
      summary[task.name + "/" + mx.name] = m.spread(fig(task.name, mx.name, "final_acc")).mean;
      line += " " + mx.name + " " + m.show(fig(task.name, mx.name, "final_acc"), 3);
    }
    highlights.push_back(line);
  }
  return exp::finish(run, rep, rj, plots, summary, highlights, claims);
}

}  // namespace lmlab::kda_recall

namespace lmlab {
namespace {

ExperimentResult run_kda_recall(ExperimentContext& ctx) {
  using namespace kda_recall;
  if (ctx.minutes > 0 && ctx.log) ctx.log("--minutes is ignored: kda-recall compares its mixers at equal steps");
  Spec spec = parse_spec(ctx);                                   // 1. spec (2. variants: task x mixer)
  exp::ExperimentRun run = exp::open_experiment_run(ctx);
  std::vector<std::string> errors;
  Measured m;
  try {
    m = exp::over_seeds(ctx, spec.seed, [&](uint64_t seed) {   // 3. runs -> 4. measurements
      return measure(ctx, spec, seed, run, &errors);
    });
  } catch (const std::exception& e) {
    exp::fail_experiment_run(run, e.what());
    throw;
  }
  std::vector<Claim> claims = verdict(m, spec.rules);            // 5. verdict
  return report(ctx, spec, run, m, claims, errors);              // 6. report
}

const bool registered = register_experiment_kind("kda_recall", &run_kda_recall);

}  // namespace
}  // namespace lmlab
