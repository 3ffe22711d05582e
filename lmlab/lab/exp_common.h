// The plumbing every experiment kind (lmlab/experiments/*.cpp) shares, so that an experiment's file
// holds its science: reading settings, seeds, training a variant as a registered run, the
// experiment's own run and output folder, results.json, the report's common parts, the result.
#pragma once
#include <cmath>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/lab/experiments.h"
#include "lmlab/lab/registry.h"
#include "lmlab/lab/report.h"
#include "lmlab/lab/seeds.h"
#include "lmlab/lab/train_run.h"
#include "lmlab/lab/verdict.h"
#include "lmlab/models/transformer.h"
#include "lmlab/train/corpus.h"

namespace lmlab::exp {

// j[k] as T, or `d` when the key is absent; ConfigError naming the key when it has another type.
template <class T>
T json_or(const nlohmann::json& j, const char* k, T d) {
  if (!j.contains(k)) return d;
  try {
    return j[k].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(str_cat("[exp] setting '", k, "' has the wrong type: ", j[k].dump()));
  }
}

// Fixed-point text of v with `prec` decimals; "n/a" for NaN / Inf.
inline std::string fixed(double v, int prec) {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// Mean causal-LM loss (nats/token) over every token of a token shard, in sequential windows of
// `context` tokens, `batch` windows at a time; NaN for an empty shard.
double shard_loss(const Transformer& m, const std::string& shard, int64_t context, int64_t batch);

// The seeds to run: ctx.seed (or the spec's `spec_seed` when ctx.seed is 0) and the ctx.seeds - 1
// that follow it.
std::vector<uint64_t> seeds_of(const ExperimentContext& ctx, uint64_t spec_seed);

// Runs `measure` once per seed (logging which seed runs) and gathers what each measured.
Measured over_seeds(const ExperimentContext& ctx, uint64_t spec_seed,
                    const std::function<Measurements(uint64_t seed)>& measure);

// Trains one variant of an experiment as its own registered run, "<experiment>/<scale>/<variant>"
// (plus "/seed<S>" when the experiment runs several seeds), logging and reporting progress through
// ctx, and returns the run.
TrainRunResult train_variant(const ExperimentContext& ctx, const TrainConfig& cfg, const std::string& variant);

// Points a variant's config at a prepared corpus: vocabulary, end-of-text id as BOS/EOS, train /
// validation shards, validation bytes per token, the tokenizer, and the run seed.
void use_corpus(TrainConfig& cfg, const CorpusMeta& corpus, uint64_t seed);

// The experiment's own registered run ("<experiment>/<scale>", kind "exp") and its output folder
// (ctx.out_dir, else <runs_dir>/<id>), created.
struct ExperimentRun {
  RunRegistry reg;
  int64_t id = 0;
  std::string out;
};
ExperimentRun open_experiment_run(const ExperimentContext& ctx);
// Marks the run failed with `error` (for an exception that ends the experiment).
void fail_experiment_run(ExperimentRun& run, const std::string& error);

// The metric name under which a seed's per-step figure is logged to the experiment's run: `name`
// itself for a single seed, "seed<S>/<name>" for several.
std::string seed_metric(const ExperimentContext& ctx, uint64_t seed, const std::string& name);

// results.json's common head: experiment, scale, run id, seeds, settings.
nlohmann::ordered_json results_head(const ExperimentContext& ctx, int64_t run_id, const Measured& m);
// Every seed's figures, for results.json.
nlohmann::ordered_json figures_json(const Measured& m);

// The report's common facts (scale, run, seeds) and its closing "Rerun" section.
void add_run_facts(Report& rep, const ExperimentContext& ctx, int64_t run_id, const Measured& m);
void add_rerun(Report& rep, const ExperimentContext& ctx);
// The line that says how many seeds decided the verdicts and what "held" means.
std::string seeds_sentence(const Measured& m);

// Writes results.json and the report into run.out, registers them and the plots (path, caption) as
// artifacts of the run, finishes it "done" with `summary`, and returns the result with the claims
// as highlights after `highlights`.
ExperimentResult finish(ExperimentRun& run, const Report& rep, const nlohmann::ordered_json& results,
                        const std::vector<std::pair<std::string, std::string>>& plots, const nlohmann::json& summary,
                        std::vector<std::string> highlights, const std::vector<Claim>& claims);

}  // namespace lmlab::exp
