// Experiment "kda_recall" (experiments/kda-recall.json): its verdict, a pure function of the
// measurements, exposed for the unit tests.
//
// Figures of one seed, per task T and mixer M ("softmax", "kda", "gdn", "deltanet", "gla"):
//   T/M/final_acc   answer-token accuracy on the held-out examples at the last step
//   T/M/late_gain   final accuracy minus the accuracy at 3/4 of the steps (is the curve still rising?)
//   T/M/steps_to_X  first eval step with accuracy >= X (X printed with 2 decimals); absent when never
//   T/M/diverged    1 when the run diverged (its figures are then absent), else 0
#pragma once
#include <string>
#include <vector>

#include "lmlab/lab/seeds.h"
#include "lmlab/lab/verdict.h"

namespace lmlab::kda_recall {

struct Rules {
  std::vector<std::string> tasks;
  std::vector<double> thresholds = {0.5, 0.9};
  int64_t steps = 0, eval_every = 0;  // "never reached" counts as steps + eval_every
  double tie = 0.02;     // accuracies within this count as equal for ">="
  double rising = 0.02;  // a curve is still rising when its late gain exceeds this
};

std::string fig(const std::string& task, const std::string& mixer, const std::string& what);

// The paper's ranking (softmax >= KDA >= GDN > GLA, one claim per link) and "KDA reaches a given
// accuracy in fewer steps than GDN", per task. A seed where a mixer diverged tests no claim that
// involves it.
std::vector<Claim> verdict(const Measured& m, const Rules& r);

// Mixers ranked by mean final accuracy (best first), leaving out every mixer that diverged in any
// seed; the left-out ones are returned in `diverged`.
std::vector<std::string> ranking(const Measured& m, const std::string& task, const std::vector<std::string>& mixers,
                                 std::vector<std::string>* diverged);

// Whether `mixer`'s accuracy on `task` was still rising at the end (late gain > r.rising, decided like
// a claim over the seeds), as a sentence that states the figure.
std::string still_rising(const Measured& m, const Rules& r, const std::string& task, const std::string& mixer,
                         const std::string& label, Verdict* v = nullptr);

}  // namespace lmlab::kda_recall
