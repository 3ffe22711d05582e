// N-gram baselines over token shards: unigram and bigram models with add-k smoothing, the bigram
// interpolated with the unigram (Jelinek & Mercer 1980). Their cross-entropy on held-out tokens is
// the yardstick a neural LM must beat.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmlab {

struct NgramResult {
  double unigram_loss = 0;  // nats per token on the evaluation shard
  double bigram_loss = 0;
  double bigram_lambda = 0;  // weight of the bigram in the interpolation (chosen on the evaluation shard)
  double unigram_k = 0;
};

// Fits on `train_shard`, scores `eval_shard`. The interpolation weight is picked from a small grid
// by the evaluation loss itself, which flatters the baseline (a conservative yardstick).
NgramResult ngram_baselines(const std::string& train_shard, const std::string& eval_shard);

}  // namespace lmlab
