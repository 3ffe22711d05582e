// Token samplers over a logits row: greedy (temperature 0), temperature, top-k, top-p (nucleus,
// Holtzman et al. 2020), min-p (Nguyen et al. 2024), repetition penalty (CTRL, Keskar et al. 2019:
// positive logits of seen tokens divided by the penalty, negative ones multiplied), OpenAI's
// frequency and presence penalties (logit - frequency * count - presence * [count > 0]) and logit
// bias. The order follows llama.cpp's default chain: bias -> penalties -> top-k -> top-p -> min-p ->
// temperature -> draw. Draws come from a seeded counter-based generator, so a seed reproduces a
// sample. No step sorts the whole vocabulary: top-k selects, top-p sorts a growing head, min-p
// filters, and with no filter the draw walks the vocabulary in id order.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "lmlab/core/rng.h"

namespace lmlab {

struct SamplerConfig {
  double temperature = 0.8;   // 0 = greedy
  int64_t top_k = 40;         // 0 = off
  double top_p = 0.95;        // 1 = off
  double min_p = 0.05;        // 0 = off
  double repetition_penalty = 1.0;  // 1 = off
  double frequency_penalty = 0.0;   // OpenAI's, per occurrence (0 = off)
  double presence_penalty = 0.0;    // OpenAI's, once per token seen (0 = off)
  int64_t repeat_last_n = 64;       // tokens considered for the penalties
  std::vector<std::pair<int64_t, float>> logit_bias;  // added to those tokens' logits first
  uint64_t seed = 0;
  void validate() const;  // ConfigError naming the field
};

// Picks a token from logits[0..V). `history` holds the tokens so far (for the penalties).
int64_t sample_token(const float* logits, int64_t V, const std::vector<int64_t>& history, const SamplerConfig& cfg,
                     Generator& gen);

// What a draw at temperature > 0 chooses among: the kept tokens and their unnormalised weights
// exp((logit - max) / temperature), in the order the draw walks them. (sample_token's own steps,
// exposed for tests.)
struct SamplingCandidates {
  std::vector<int32_t> ids;
  std::vector<double> weights;
};
SamplingCandidates sampling_candidates(const float* logits, int64_t V, const std::vector<int64_t>& history,
                                       const SamplerConfig& cfg);

}  // namespace lmlab
