// InferState: what a model needs to continue a sequence — one cache per layer (CacheSet, KV for
// attention) plus the tokens consumed. fork() shares the caches copy-on-write; truncate(n) rolls
// back to the first n tokens (power-MCMC resampling, speculative decoding, AsyncThink workers).
#pragma once
#include <vector>

#include "lmlab/models/transformer.h"

namespace lmlab {

class InferState {
 public:
  explicit InferState(const Transformer& model) : cache(model.new_cache()) {}
  InferState fork() const { return *this; }
  void truncate(int64_t n);
  int64_t length() const { return int64_t(tokens.size()); }
  size_t bytes() const { return cache.bytes(); }
  double bytes_per_token() const { return tokens.empty() ? 0.0 : double(bytes()) / double(tokens.size()); }

  CacheSet cache;
  std::vector<int64_t> tokens;  // every token fed so far (batch row 0 for batch 1)
};

}  // namespace lmlab
