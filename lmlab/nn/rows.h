// Continuous batching helper for the mixers' forward_rows: each batch row of a forward runs against
// its own cache, and the per-row results are put back together as one batch.
#pragma once
#include <functional>
#include <vector>

#include "lmlab/core/tensor.h"
#include "lmlab/ops/join.h"

namespace lmlab {

// f(b) for every batch row b (each [1, ...]), concatenated along dim 0.
inline Tensor concat_rows(int64_t batch, const std::function<Tensor(int64_t)>& f) {
  std::vector<Tensor> rows;
  for (int64_t b = 0; b < batch; ++b) rows.push_back(f(b));
  return rows.size() == 1 ? rows[0] : concat(rows, 0);
}

}  // namespace lmlab
