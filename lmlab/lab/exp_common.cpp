// Helpers shared by the experiment kinds.
#include "lmlab/lab/exp_common.h"

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

}  // namespace lmlab::exp
