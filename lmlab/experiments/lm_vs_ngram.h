// Experiment "lm_vs_ngram" (experiments/brown-baseline.json): its verdict, a pure function of the
// measurements, exposed for the unit tests.
//
// Figures of one seed: val_loss, test_loss (the model, nats/token over the whole split),
// bigram_val, unigram_val, bigram_test, unigram_test (the n-gram baselines), steps, seconds.
#pragma once
#include <vector>

#include "lmlab/lab/seeds.h"
#include "lmlab/lab/verdict.h"

namespace lmlab::lm_vs_ngram {

struct Rules {
  // "far below": the model's val loss at least this many nats/token under the bigram's (0.5 nats =
  // a perplexity at most 61% of the bigram's).
  double far_below_nats = 0.5;
};

// The claim "far below the bigram" by the margin rule, and plain "below" beside it.
std::vector<Claim> verdict(const Measured& m, const Rules& r);

}  // namespace lmlab::lm_vs_ngram
