// Token samplers over a logits row: greedy (temperature 0), temperature, top-k, top-p (nucleus,
// Holtzman et al. 2020), min-p (Nguyen et al. 2024), repetition penalty (CTRL, Keskar et al. 2019:
// positive logits of seen tokens divided by the penalty, negative ones multiplied). The order
// follows llama.cpp's default chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw.
// Draws come from a seeded counter-based generator, so a seed reproduces a sample.
#pragma once
#include <cstdint>
#include <vector>

#include "lmlab/core/rng.h"

namespace lmlab {

struct SamplerConfig {
  double temperature = 0.8;   // 0 = greedy
  int64_t top_k = 40;         // 0 = off
  double top_p = 0.95;        // 1 = off
  double min_p = 0.05;        // 0 = off
  double repetition_penalty = 1.0;  // 1 = off
  int64_t repeat_last_n = 64;       // tokens considered for the penalty
  uint64_t seed = 0;
  void validate() const;  // ConfigError naming the field
};

// Picks a token from logits[0..V). `history` holds the tokens so far (for the penalty).
int64_t sample_token(const float* logits, int64_t V, const std::vector<int64_t>& history, const SamplerConfig& cfg,
                     Generator& gen);

}  // namespace lmlab
