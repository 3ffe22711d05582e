// Experiment "kimi_linear" (experiments/kimi-linear.json): its verdict, a pure function of the
// measurements, exposed for the unit tests.
//
// Figures of one seed:
//   brown/V/val_loss, brown/V/parameters, brown/V/tokens_per_s   per layer-ratio variant V
//     ("all-mla", "kda3-mla1", "kda1-mla1", "kda")
// and, measured once (random weights; the first seed carries them):
//   cache/P/growth_per_token, cache/P/recurrent_bytes, cache/P/bytes_16k   per decode model P
//     ("hybrid" = 3:1 KDA:MLA, "mla" = all MLA, "mha" = all full attention)
//   decode/P/C   batch-1 ms per token at context C, for P in {hybrid, mla}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmlab/lab/seeds.h"
#include "lmlab/lab/verdict.h"

namespace lmlab::kimi_linear {

struct Rules {
  double about_equal = 0.02;   // "1:1 about as good as 3:1": perplexities within 2%
  std::vector<int64_t> contexts;  // the decode contexts measured
};

std::vector<Claim> verdict(const Measured& m, const Rules& r);

}  // namespace lmlab::kimi_linear
