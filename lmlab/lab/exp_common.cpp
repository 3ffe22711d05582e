// Helpers shared by the experiment kinds.
#include "lmlab/lab/exp_common.h"

#include <filesystem>

#include "lmlab/core/node.h"
#include "lmlab/data/loader.h"
#include "lmlab/objectives/causal_lm.h"

namespace lmlab::exp {

double shard_loss(const Transformer& m, const std::string& shard, int64_t context, int64_t batch) {
  NoGrad ng;
  SequentialLoader l(TokenShard::open(shard), batch, context);
  Batch b;
  double sum = 0;
  int64_t n = 0;
  while (l.next(b)) {
    sum += causal_lm_loss(m, b.inputs, b.targets).item() * double(b.inputs.numel());
    n += b.inputs.numel();
  }
  return n ? sum / double(n) : NAN;
}

TrainRunResult train_variant(const ExperimentContext& ctx, const TrainConfig& cfg, const std::string& variant) {
  TrainRunOptions ro;
  ro.name = ctx.name + "/" + ctx.scale + "/" + variant;
  ro.registry_path = ctx.registry_path;
  ro.runs_dir = ctx.runs_dir;
  ro.log = ctx.log;
  if (ctx.progress) ro.progress = [&ctx, variant](const std::string& p) { ctx.progress(variant + ": " + p); };
  return run_training(cfg, ro);
}

ExperimentRun open_experiment_run(const ExperimentContext& ctx) {
  ExperimentRun r{RunRegistry::open(ctx.registry_path), 0, ""};
  r.id = r.reg.create_run(ctx.name + "/" + ctx.scale, "exp", ctx.spec.dump(), current_git_commit("."));
  r.out = ctx.out_dir.empty() ? ctx.runs_dir + "/" + std::to_string(r.id) : ctx.out_dir;
  std::filesystem::create_directories(r.out);
  return r;
}

void finish_experiment_run(ExperimentRun& run, const std::vector<std::pair<std::string, std::string>>& plots,
                           const nlohmann::json& summary) {
  for (const char* f : {"report.md", "report.html", "results.json"}) run.reg.add_artifact(run.id, "report", run.out + "/" + f);
  for (const auto& [path, caption] : plots) run.reg.add_artifact(run.id, "plot", path);
  run.reg.finish_run(run.id, "done", summary.dump());
}

}  // namespace lmlab::exp
