// Experiment "moe" (experiments/moe.json; spec /work/shared/papers/moe.md, "Small-scale
// reproduction"): dense and sparse-MoE FFNs trained on Brown for the same steps and tokens, with
// identical attention (Qwen3: q/k norms) in every variant; val loss, per-layer expert loads (max/mean,
// CV, dead experts), tokens/s; each of the spec's claims beside ours, with whether it held.
// Stages: spec -> variants -> runs -> measurements -> verdict (pure) -> report.
#include "lmlab/experiments/moe.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "lmlab/core/node.h"
#include "lmlab/lab/plot.h"
#include "lmlab/lab/exp_common.h"
#include "lmlab/train/checkpoint.h"
#include "lmlab/train/corpus.h"

namespace lmlab::moe {

using exp::fixed;
using exp::json_or;

// ======== 1. spec ========


// A variant's model fields (the variant's "model" object over the scale's): the names are the
// HF config's. Unknown names are errors, so a typo cannot silently train the wrong model.
void apply_model_fields(TransformerConfig& m, int64_t& context, const nlohmann::json& j, const std::string& where) {
  static const std::set<std::string> known = {
      "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
      "context", "num_experts", "num_experts_per_tok", "moe_intermediate_size", "n_shared_experts", "scoring_func",
      "norm_topk_prob", "routed_scaling_factor", "tie_word_embeddings"};
  LMLAB_CHECK(j.is_object(), ConfigError, "[exp moe] ", where, " must be an object");
  for (auto it = j.begin(); it != j.end(); ++it)
    LMLAB_CHECK(known.count(it.key()), ConfigError, "[exp moe] ", where, " has unknown field '", it.key(), "'");
  auto i64 = [&](const char* k, int64_t& d) { if (j.contains(k)) d = j[k].get<int64_t>(); };
  i64("hidden_size", m.hidden_size);
  i64("num_hidden_layers", m.num_hidden_layers);
  if (j.contains("num_attention_heads")) m.num_attention_heads = m.num_key_value_heads = j["num_attention_heads"];
  i64("num_key_value_heads", m.num_key_value_heads);
  i64("intermediate_size", m.intermediate_size);
  i64("context", context);
  i64("num_experts", m.num_experts);
  i64("num_experts_per_tok", m.num_experts_per_tok);
  i64("moe_intermediate_size", m.moe_intermediate_size);
  i64("n_shared_experts", m.n_shared_experts);
  if (j.contains("scoring_func")) m.scoring_func = j["scoring_func"].get<std::string>();
  if (j.contains("norm_topk_prob")) m.norm_topk_prob = j["norm_topk_prob"].get<bool>();
  if (j.contains("routed_scaling_factor")) m.routed_scaling_factor = j["routed_scaling_factor"].get<double>();
  if (j.contains("tie_word_embeddings")) m.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
}

void apply_train_fields(TrainConfig& c, const nlohmann::json& j, const std::string& where) {
  static const std::set<std::string> known = {
      "batch_size", "steps", "lr", "min_lr", "warmup", "weight_decay", "eval_every", "eval_batches", "seed",
      "precision", "grad_accum", "moe_aux_loss_coef", "moe_z_loss_coef", "moe_bias_update_rate"};
  LMLAB_CHECK(j.is_object(), ConfigError, "[exp moe] ", where, " must be an object");
  for (auto it = j.begin(); it != j.end(); ++it)
    LMLAB_CHECK(known.count(it.key()), ConfigError, "[exp moe] ", where, " has unknown field '", it.key(), "'");
  auto i64 = [&](const char* k, int64_t& d) { if (j.contains(k)) d = j[k].get<int64_t>(); };
  auto num = [&](const char* k, double& d) { if (j.contains(k)) d = j[k].get<double>(); };
  i64("batch_size", c.batch_size);
  i64("steps", c.steps);
  num("lr", c.lr);
  c.min_lr = c.lr / 10;
  num("min_lr", c.min_lr);
  i64("warmup", c.warmup);
  num("weight_decay", c.weight_decay);
  i64("eval_every", c.eval_every);
  i64("eval_batches", c.eval_batches);
  if (j.contains("seed")) c.seed = j["seed"].get<uint64_t>();
  if (j.contains("precision")) c.precision = j["precision"].get<std::string>();
  i64("grad_accum", c.grad_accum);
  num("moe_aux_loss_coef", c.moe_aux_loss_coef);
  num("moe_z_loss_coef", c.moe_z_loss_coef);
  num("moe_bias_update_rate", c.moe_bias_update_rate);
}

struct Variant {
  std::string name, label;
  TrainConfig cfg;
  bool moe = false;
};

struct Spec {
  int64_t vocab = 2048;
  TrainConfig base;  // without the corpus fields (filled in by the runs)
  nlohmann::json variants;
  Rules rules;
};

Spec parse_spec(const ExperimentContext& ctx) {
  const auto& s = ctx.settings;
  Spec p;
  p.vocab = json_or<int64_t>(s, "vocab_size", 2048);
  TrainConfig& base = p.base;
  base.model.architecture = "Qwen3ForCausalLM";
  base.model.tie_word_embeddings = true;
  base.model.norm_topk_prob = true;
  base.ckpt_every = 0;
  base.keep_last = 1;
  base.log_every = 1;
  base.moe_aux_loss_coef = 0;
  base.moe_bias_update_rate = 0;
  base.context = 128;
  apply_model_fields(base.model, base.context, s.at("model"), "scale model");
  apply_train_fields(base, s.at("train"), "scale train");
  p.variants = s.contains("variants") ? s["variants"] : ctx.spec.at("variants");
  LMLAB_CHECK(p.variants.is_array() && !p.variants.empty(), ConfigError, "[exp moe] 'variants' must be a non-empty list");
  return p;
}

// ======== 2. variants: the base configuration with each variant's model and train fields ========

std::vector<Variant> make_variants(const Spec& p, const CorpusMeta& corpus, uint64_t seed) {
  TrainConfig base = p.base;
  exp::use_corpus(base, corpus, seed);
  std::vector<Variant> out;
  for (const auto& v : p.variants) {
    Variant r;
    r.name = v.at("name").get<std::string>();
    r.label = json_or<std::string>(v, "label", r.name);
    r.cfg = base;
    if (v.contains("model")) apply_model_fields(r.cfg.model, r.cfg.context, v["model"], "variant '" + r.name + "' model");
    if (v.contains("train")) apply_train_fields(r.cfg, v["train"], "variant '" + r.name + "' train");
    r.cfg.seed = seed;  // the experiment's seed, not a variant's
    r.moe = r.cfg.model.num_experts > 0;
    if (r.moe) r.cfg.model.architecture = "Qwen3MoeForCausalLM";
    r.cfg.model.max_position_embeddings = r.cfg.context;
    out.push_back(r);
  }
  return out;
}

// ======== 3. runs -> 4. measurements ========

Measurements measure(const ExperimentContext& ctx, const Spec& p, uint64_t seed, std::vector<Variant>* first) {
  auto log = [&](const std::string& m) { if (ctx.log) ctx.log(m); };
  CorpusMeta corpus = ensure_brown_corpus(ctx.runs_dir + "/data/brown-v" + std::to_string(p.vocab), p.vocab, log);
  std::vector<Variant> vars = make_variants(p, corpus, seed);
  if (first && first->empty()) *first = vars;
  Measurements m;
  RunRegistry reg = RunRegistry::open(ctx.registry_path);
  for (const auto& v : vars) {
    log(str_cat("---- ", v.label, " ----"));
    TrainRunResult run = exp::train_variant(ctx, v.cfg, v.name);
    Transformer model(v.cfg.model);
    load_model_weights(model, run.checkpoint);
    std::string f = v.name + "/";
    m.figures[f + "val_loss"] = exp::shard_loss(model, corpus.shard(1), v.cfg.context, v.cfg.batch_size);
    int64_t total = model.num_parameters(), active = total;
    for (const auto& l : model.moe_layers())
      active -= (l->cfg.num_experts - l->cfg.top_k) * 3 * l->cfg.hidden * l->cfg.expert_intermediate;
    m.figures[f + "total_params"] = double(total);
    m.figures[f + "active_params"] = double(active);
    m.figures[f + "tokens_per_s"] = run.tokens_per_s;
    m.figures[f + "run_id"] = double(run.run_id);
    Measurements::Curve vc, bc;
    for (auto& [st, val] : reg.metric_series(run.run_id, "val/loss")) vc.x.push_back(double(st)), vc.y.push_back(val);
    m.curves[f + "val_loss"] = vc;
    if (v.moe && !run.moe.layers.empty()) {
      double worst = 0, cv = 0, dead = 0;
      for (const auto& l : run.moe.layers) {
        worst = std::max(worst, l.max_over_mean);
        cv += l.cv / double(run.moe.layers.size());
        dead += double(l.dead);
        Measurements::Curve share;
        std::vector<double> sh = l.token_share();
        for (size_t e = 0; e < sh.size(); ++e) share.x.push_back(double(e)), share.y.push_back(sh[e]);
        m.curves[str_cat(f, "load/layer", l.layer)] = share;
      }
      m.figures[f + "max_over_mean"] = worst;
      m.figures[f + "cv"] = cv;
      m.figures[f + "dead"] = dead;
      m.figures[f + "aux"] = run.moe.aux_loss;
      m.figures[f + "uniform_share"] = double(run.moe.layers[0].top_k) / double(run.moe.layers[0].counts.size());
      for (auto& [st, val] : reg.metric_series(run.run_id, "moe/max_over_mean")) bc.x.push_back(double(st)), bc.y.push_back(val);
      m.curves[f + "max_over_mean"] = bc;
    }
    log(str_cat(v.name, ": val loss ", fixed(m.get(f + "val_loss"), 4), ", ", fixed(run.tokens_per_s, 0), " tokens/s",
                v.moe ? str_cat(", max/mean ", fixed(m.get(f + "max_over_mean"), 2), ", CV ", fixed(m.get(f + "cv"), 3), ", dead ",
                                m.get(f + "dead"))
                      : std::string()));
  }
  return m;
}

// ======== 5. verdict (pure) ========

std::string best_balanced(const Measured& m) {
  std::string best;
  double bl = INFINITY;
  for (const char* v : {"moe-aux", "moe-auxfree"}) {
    Spread s = m.spread(std::string(v) + "/val_loss");
    if (s.n && s.mean < bl) bl = s.mean, best = v;
  }
  return best;
}

std::vector<Claim> verdict(const Measured& m, const Rules& r) {
  std::vector<Claim> claims;
  auto has = [&](const std::string& v) { return m.has(v + "/val_loss"); };
  auto f = [](const std::string& v, const char* what) { return v + "/" + what; };
  auto loss = [&](const std::string& v) { return m.show(f(v, "val_loss"), 4); };
  const std::string best = best_balanced(m);
  std::string all_moe;
  for (const char* v : {"moe-none", "moe-aux", "moe-auxfree", "moe-shared"})
    if (has(v)) all_moe += str_cat(all_moe.empty() ? "" : ", ", v, " ", loss(v));
  if (!best.empty() && has("dense-B"))
    claims.push_back(decide("", "At equal active FLOPs the MoE reaches a lower loss than the dense model (MoE beats dense B).",
                            str_cat("val loss(dense B) - val loss(", best, "), nats/token; ", best,
                                    " is the balanced routed-only MoE with the lower mean loss"),
                            str_cat(best, " ", loss(best), " vs dense B ", loss("dense-B"), "; all MoE runs: ", all_moe),
                            per_seed(m, [&](const Measurements& s) { return s.get(f("dense-B", "val_loss")) - s.get(f(best, "val_loss")); })));
  if (!best.empty() && has("dense-A") && has("dense-B"))
    claims.push_back(decide("", "...approaching or beating dense A with the larger FFN.",
                            str_cat("(val loss(dense B) - val loss(", best, ")) - (val loss(dense B) - val loss(dense A)) / 2: the MoE "
                                    "closes more than half of the gap from dense B to dense A"),
                            str_cat(best, " ", loss(best), ", dense A ", loss("dense-A"), ", dense B ", loss("dense-B")),
                            per_seed(m, [&](const Measurements& s) {
                              double a = s.get(f("dense-A", "val_loss")), b = s.get(f("dense-B", "val_loss")), e = s.get(f(best, "val_loss"));
                              return (b - e) - 0.5 * (b - a);
                            })));
  if (m.has(f("moe-none", "max_over_mean"))) {
    std::vector<double> strong = per_seed(m, [&](const Measurements& s) { return s.get(f("moe-none", "max_over_mean")) - r.collapse_strong; });
    claims.push_back(decide("", "Without balancing the routing collapses: max/mean load > 2-3, dead experts.",
                            str_cat("min(max/mean - ", r.collapse_max_over_mean, ", dead experts - 0.5): both the worst "
                                    "layer's max/mean load above ", r.collapse_max_over_mean,
                                    " and at least one dead expert (under 1% of the tokens)"),
                            str_cat("no balancing: worst-layer max/mean ", m.show(f("moe-none", "max_over_mean"), 2),
                                    ", dead experts ", m.show(f("moe-none", "dead"), 1), " (all layers), mean CV ",
                                    m.show(f("moe-none", "cv"), 3), "; max/mean above ", r.collapse_strong, " (the upper end): ",
                                    verdict_name(verdict_of(strong))),
                            per_seed(m, [&](const Measurements& s) {
                              return std::min(s.get(f("moe-none", "max_over_mean")) - r.collapse_max_over_mean,
                                              s.get(f("moe-none", "dead")) - 0.5);
                            })));
  }
  if (m.has(f("moe-none", "cv")) && m.has(f("moe-aux", "cv")) && m.has(f("moe-auxfree", "cv")))
    claims.push_back(decide("", "The aux loss and the aux-loss-free biases keep the CV of the loads small.",
                            str_cat("min(", r.small_cv, " - CV(aux), ", r.small_cv, " - CV(aux-free), CV(none) - CV(aux), "
                                    "CV(none) - CV(aux-free)): both small and both below no balancing"),
                            str_cat("mean CV: none ", m.show(f("moe-none", "cv"), 3), ", aux loss ", m.show(f("moe-aux", "cv"), 3),
                                    ", aux-free ", m.show(f("moe-auxfree", "cv"), 3), "; dead experts: aux ",
                                    m.show(f("moe-aux", "dead"), 1), ", aux-free ", m.show(f("moe-auxfree", "dead"), 1)),
                            per_seed(m, [&](const Measurements& s) {
                              double n = s.get(f("moe-none", "cv")), a = s.get(f("moe-aux", "cv")), b = s.get(f("moe-auxfree", "cv"));
                              return std::min({r.small_cv - a, r.small_cv - b, n - a, n - b});
                            })));
  if (m.has(f("moe-aux", "cv")) && m.has(f("moe-auxfree", "cv")))
    claims.push_back(decide("", "Aux-free balancing reaches balance with an equal or slightly better loss than the aux loss.",
                            str_cat("min(", r.small_cv, " - CV(aux-free), val loss(aux) + ", r.equal_loss,
                                    " - val loss(aux-free)): balanced, and its loss at most ", r.equal_loss, " above the aux loss's"),
                            str_cat("aux-free ", loss("moe-auxfree"), " vs aux loss ", loss("moe-aux"), "; aux-free CV ",
                                    m.show(f("moe-auxfree", "cv"), 3)),
                            per_seed(m, [&](const Measurements& s) {
                              return std::min(r.small_cv - s.get(f("moe-auxfree", "cv")),
                                              s.get(f("moe-aux", "val_loss")) + r.equal_loss - s.get(f("moe-auxfree", "val_loss")));
                            })));
  if (has("moe-shared") && has("moe-aux"))
    claims.push_back(not_tested("", "Shared experts (Kimi, DeepSeek, Ling) are always-on capacity beside the routed ones.",
                                str_cat("+1 shared expert ", loss("moe-shared"), " vs without ", loss("moe-aux"),
                                        " (its active FFN is 3 expert widths instead of 2)"),
                                "the spec makes no loss claim"));
  if (m.has(f("moe-aux", "total_params"))) {
    double t = m.spread(f("moe-aux", "total_params")).mean, a = m.spread(f("moe-aux", "active_params")).mean;
    claims.push_back(not_tested("", "30.5B total / 3.3B active (~9x params at fixed per-token compute, Qwen3-30B-A3B); Ling 2.0: "
                                    "up to ~7x active-compute efficiency.",
                                str_cat("ours: ", fixed(t, 0), " total / ", fixed(a, 0), " active (", fixed(t / a, 2),
                                        "x, embeddings included)"),
                                "the efficiency multiple needs a scaling study"));
  }
  return claims;
}

// ======== 6. report ========

ExperimentResult report(const ExperimentContext& ctx, const Spec& p, exp::ExperimentRun& run, const Measured& m,
                        const std::vector<Claim>& claims, const std::vector<Variant>& vars) {
  const std::string& out = run.out;
  const bool bands = m.seeds.size() > 1;
  std::vector<std::pair<std::string, std::string>> plots;
  {
    PlotSpec ps;
    ps.title = "Brown val loss (periodic, " + std::to_string(p.base.eval_batches) + " batches) vs step";
    ps.xlabel = "optimizer step";
    ps.ylabel = "cross-entropy (nats/token)";
    for (const auto& v : vars) ps.series.push_back(m.curve(v.name + "/val_loss", v.label));
    plots.emplace_back(plot_svg(ps, out + "/val_loss_curves.svg"),
                       str_cat("Periodic val loss of every variant", bands ? " (mean; band: lowest to highest seed)." : "."));
  }
  {
    BarSpec bs;
    bs.title = "Brown val: cross-entropy per token after equal steps";
    bs.ylabel = "nats/token (lower is better)";
    for (const auto& v : vars) {
      Spread s = m.spread(v.name + "/val_loss");
      bs.labels.push_back(v.name);
      bs.values.push_back(s.mean);
      if (bands) bs.lo.push_back(s.min), bs.hi.push_back(s.max);
    }
    plots.emplace_back(plot_bars_svg(bs, out + "/val_loss_bars.svg"), "Final val loss on the whole val split.");
  }
  {
    PlotSpec ps;
    ps.title = "Load imbalance during training (worst layer)";
    ps.xlabel = "optimizer step";
    ps.ylabel = "max / mean expert load";
    for (const auto& v : vars)
      if (v.moe) ps.series.push_back(m.curve(v.name + "/max_over_mean", v.label));
    ps.hlines = {{"perfect balance", 1.0}};
    if (!ps.series.empty())
      plots.emplace_back(plot_svg(ps, out + "/balance_curves.svg"), "Max/mean expert load of the worst layer over each eval interval.");
  }
  for (const auto& v : vars) {
    if (!v.moe) continue;
    PlotSpec ps;
    ps.title = "Expert load per layer: " + v.label;
    ps.xlabel = "expert";
    ps.ylabel = "share of tokens routed to the expert";
    for (int64_t l = 0; l < v.cfg.model.num_hidden_layers; ++l)
      if (!m.curve(str_cat(v.name, "/load/layer", l), "").y.empty())
        ps.series.push_back(m.curve(str_cat(v.name, "/load/layer", l), str_cat("layer ", l)));
    if (ps.series.empty()) continue;
    ps.hlines = {{"uniform (K/E)", m.spread(v.name + "/uniform_share").mean}, {"dead (1%)", kDeadExpertShare}};
    plots.emplace_back(plot_svg(ps, out + "/load_" + v.name + ".svg"),
                       "Share of tokens per expert and layer over the last eval interval (" + v.label + ")" +
                           (bands ? ", mean over seeds with their range." : "."));
  }

  nlohmann::ordered_json j = exp::results_head(ctx, run.id, m);
  j["steps"] = p.base.steps;
  j["tokens_per_run"] = p.base.steps * p.base.batch_size * p.base.context * p.base.grad_accum;
  j["variants"] = nlohmann::json::array();
  for (const auto& v : vars)
    j["variants"].push_back({{"name", v.name}, {"label", v.label}, {"config", nlohmann::json::parse(v.cfg.to_json())}});
  j["per_seed"] = exp::figures_json(m);
  j["claims"] = claims_json(claims);

  const TrainConfig& base = p.base;
  Report rep("moe: sparse mixture-of-experts vs dense FFNs on Brown");
  rep.add_paragraph(ctx.spec.value("description", ""));
  exp::add_run_facts(rep, ctx, run.id, m);
  rep.add_kv("every variant", str_cat(base.steps, " steps x ", base.batch_size, " x ", base.context, " tokens = ",
                                      base.steps * base.batch_size * base.context * base.grad_accum, " tokens, lr ", base.lr,
                                      ", ", base.precision));
  rep.add_kv("shared trunk", str_cat("Qwen3 attention (q/k norms), d=", base.model.hidden_size, ", ", base.model.num_hidden_layers,
                                     " layers, ", base.model.num_attention_heads, " heads, context ", base.context, ", vocab ",
                                     p.vocab, " (BPE on Brown)"));
  rep.add_kv("spec", ctx.spec.value("paper", std::string("/work/shared/papers/moe.md")));
  rep.add_heading(2, "Results");
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : vars) {
    auto s = [&](const char* what, int prec) { return v.moe ? m.show(v.name + "/" + what, prec) : std::string("-"); };
    rows.push_back({v.label, fixed(m.spread(v.name + "/total_params").mean, 0), fixed(m.spread(v.name + "/active_params").mean, 0),
                    m.show(v.name + "/val_loss", 4), m.show(v.name + "/tokens_per_s", 0), s("max_over_mean", 2), s("cv", 3),
                    s("dead", 1), s("aux", 3)});
  }
  rep.add_table({"variant", "params", "active params", "val loss", "tokens/s", "max/mean load", "CV", "dead experts", "aux loss"}, rows);
  rep.add_paragraph(
      "Val loss: nats/token over the whole val split with the final weights. Loads: over the last eval interval of "
      "training; max/mean is the worst layer's, CV the mean over layers, dead experts (under 1% of the tokens) are "
      "summed over layers; aux loss = sum over layers of E * sum_e f_e P_e (1 per layer at perfect balance). "
      "tokens/s includes the periodic evaluations and was measured on a shared 2-core machine, so it is indicative only.");
  rep.add_heading(2, "The spec's claims beside ours");
  add_claims(rep, claims, "claim (spec)");
  rep.add_paragraph(exp::seeds_sentence(m));
  for (const auto& [path, cap] : plots) rep.add_plot(path, cap);
  exp::add_rerun(rep, ctx);

  nlohmann::json summary = {{"results", out + "/results.json"}};
  std::vector<std::string> highlights;
  for (const auto& v : vars) {
    summary[v.name] = {{"val_loss", m.spread(v.name + "/val_loss").mean}};
    highlights.push_back(str_cat(v.label, ": val loss ", m.show(v.name + "/val_loss", 4),
                                 v.moe ? str_cat(", max/mean ", m.show(v.name + "/max_over_mean", 2), ", CV ", m.show(v.name + "/cv", 3),
                                                 ", dead ", m.show(v.name + "/dead", 1))
                                       : std::string()));
  }
  return exp::finish(run, rep, j, plots, summary, highlights, claims);
}

}  // namespace lmlab::moe

namespace lmlab {
namespace {

ExperimentResult run_moe(ExperimentContext& ctx) {
  using namespace moe;
  if (ctx.minutes > 0 && ctx.log) ctx.log("--minutes is ignored: the moe experiment compares its variants at equal steps");
  Spec spec = parse_spec(ctx);                                 // 1. spec
  exp::ExperimentRun run = exp::open_experiment_run(ctx);
  std::vector<Variant> vars;                                   // 2. variants (the first seed's, for the report)
  Measured m;
  try {
    m = exp::over_seeds(ctx, spec.base.seed, [&](uint64_t seed) {  // 3. runs -> 4. measurements
      return measure(ctx, spec, seed, &vars);
    });
  } catch (const std::exception& e) {
    exp::fail_experiment_run(run, e.what());
    throw;
  }
  std::vector<Claim> claims = verdict(m, spec.rules);          // 5. verdict
  return report(ctx, spec, run, m, claims, vars);              // 6. report
}

const bool registered = register_experiment_kind("moe", &run_moe);

}  // namespace
}  // namespace lmlab
