// Random-window batches over a token shard, reproducible by seed and resumable mid-epoch.
// An epoch visits every non-overlapping window of T+1 tokens once, in an order drawn from a
// Philox-seeded permutation (the window grid is shifted by a per-epoch offset so boundaries vary).
// The loader's position is (epoch, index); restoring it continues with exactly the same batches.
#pragma once
#include <cstdint>
#include <vector>

#include "lmlab/core/tensor.h"
#include "lmlab/data/token_shard.h"

namespace lmlab {

struct Batch {
  Tensor inputs;   // [B, T] i64
  Tensor targets;  // [B, T] i64 (inputs shifted by one)
};

struct LoaderState {
  uint64_t seed = 0, epoch = 0, index = 0;
};

class WindowLoader {
 public:
  WindowLoader(TokenShard shard, int64_t batch, int64_t context, uint64_t seed);
  Batch next();
  LoaderState state() const { return {seed_, epoch_, index_}; }
  void set_state(const LoaderState& s);
  int64_t windows_per_epoch() const { return int64_t(order_.size()); }
  const TokenShard& shard() const { return shard_; }

 private:
  void start_epoch();
  TokenShard shard_;
  int64_t B_, T_;
  uint64_t seed_, epoch_ = 0, index_ = 0, offset_ = 0;
  std::vector<uint64_t> order_;
};

// Sequential, non-overlapping windows covering the shard once (evaluation). Returns false at the end.
class SequentialLoader {
 public:
  SequentialLoader(TokenShard shard, int64_t batch, int64_t context, int64_t max_batches = -1);
  bool next(Batch& out);

 private:
  TokenShard shard_;
  int64_t B_, T_, max_batches_, done_ = 0;
  uint64_t pos_ = 0;
};

}  // namespace lmlab
