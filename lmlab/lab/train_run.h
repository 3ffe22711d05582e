// A training run as the lab sees it: a row in the run registry (config, git commit, status), step
// and eval metrics logged as they happen, checkpoints recorded as artefacts, a progress line for
// the terminal, SIGINT -> checkpoint and status "interrupted", resume by run id. MoE models also log
// expert loads at every eval interval (moe_metrics names them).
#pragma once
#include <functional>
#include <string>

#include "lmlab/lab/registry.h"
#include "lmlab/train/trainer.h"

namespace lmlab {

struct TrainRunResult {
  int64_t run_id = 0;
  std::string out_dir;
  std::string status;  // done | interrupted | failed
  EvalInfo final_eval;
  int64_t steps = 0, tokens = 0;
  double seconds = 0, tokens_per_s = 0;
  double time_budget_s = 0;      // the run's time budget (0: none)
  bool stopped_on_clock = false;  // it ended on the budget's deadline: `steps` is how many fit
  int64_t parameters = 0;
  std::string checkpoint;
  MoEStatsInfo moe;  // MoE models: the expert loads of the last eval interval
};

struct TrainRunOptions {
  std::string name = "train";
  std::string registry_path = "runs/lmlab.db";
  std::string runs_dir = "runs";     // the run's folder is runs_dir/<id> unless cfg.out_dir is set by the caller
  int64_t resume_run = 0;            // > 0: continue that run from its newest checkpoint
  bool use_run_dir = true;           // put checkpoints under runs_dir/<id>
  std::function<void(const std::string&)> progress;  // progress lines (\r-updated in a terminal)
  std::function<void(const std::string&)> log;       // other messages
};

TrainRunResult run_training(TrainConfig cfg, const TrainRunOptions& opt);

// Registry metrics of one MoE load report: "moe/aux_loss", "moe/z_loss", "moe/max_over_mean" (worst
// layer), "moe/cv" (mean over layers), "moe/dead" (all layers), and per layer L "moe/layerL/max_over_mean",
// "moe/layerL/cv", "moe/layerL/dead", "moe/layerL/share_E" (share of tokens routed to expert E).
std::vector<std::pair<std::string, double>> moe_metrics(const MoEStatsInfo& info);

// "12m03s", "1h02m"
std::string format_duration(double seconds);

}  // namespace lmlab
