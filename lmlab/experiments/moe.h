// Experiment "moe" (experiments/moe.json): its verdict, a pure function of the measurements, exposed
// for the unit tests.
//
// Figures of one seed, per variant V ("dense-A", "dense-B", "moe-none", "moe-aux", "moe-auxfree",
// "moe-shared"): V/val_loss (nats/token, whole val split), V/total_params, V/active_params,
// V/tokens_per_s; MoE variants also V/max_over_mean (worst layer), V/cv (mean over layers), V/dead
// (experts under 1% of the tokens, all layers), V/aux — over the last eval interval of training.
#pragma once
#include <string>
#include <vector>

#include "lmlab/lab/seeds.h"
#include "lmlab/lab/verdict.h"

namespace lmlab::moe {

// The spec's thresholds (/work/shared/papers/moe.md, "Reproduced if").
struct Rules {
  double collapse_max_over_mean = 2.0;  // "skewed load (max/mean > 2-3, dead experts)": both, from 2 up
  double collapse_strong = 3.0;         // the upper end of "2-3", reported beside the verdict
  double small_cv = 0.3;                // "keep CV small": loads within ~30% of the mean
  double equal_loss = 0.01;             // "equal or slightly better loss": within 0.01 nats/token
};

std::vector<Claim> verdict(const Measured& m, const Rules& r);

// The balanced routed-only MoE that stands for "the MoE" in the loss claims: moe-aux or moe-auxfree,
// whichever has the lower mean val loss over the seeds ("" when neither ran).
std::string best_balanced(const Measured& m);

}  // namespace lmlab::moe
