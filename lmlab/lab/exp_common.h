// Helpers shared by the experiment kinds (exp_*.cpp).
#pragma once
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/lab/experiments.h"
#include "lmlab/lab/registry.h"
#include "lmlab/lab/train_run.h"
#include "lmlab/models/transformer.h"

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

// Trains one variant of an experiment as its own registered run, "<experiment>/<scale>/<variant>",
// logging and reporting progress through ctx, and returns the run.
TrainRunResult train_variant(const ExperimentContext& ctx, const TrainConfig& cfg, const std::string& variant);

// The experiment's own registered run ("<experiment>/<scale>", kind "exp") and its output folder
// (ctx.out_dir, else <runs_dir>/<id>), created.
struct ExperimentRun {
  RunRegistry reg;
  int64_t id = 0;
  std::string out;
};
ExperimentRun open_experiment_run(const ExperimentContext& ctx);

// Registers out/report.md, report.html, results.json and the plots (path, caption) as artifacts of
// the run, then finishes it "done" with `summary`.
void finish_experiment_run(ExperimentRun& run, const std::vector<std::pair<std::string, std::string>>& plots,
                           const nlohmann::json& summary);

}  // namespace lmlab::exp
