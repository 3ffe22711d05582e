// Scans and triangular masks (torch.cumsum, torch.tril, torch.triu on the last two dims).
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {
Tensor cumsum(const Tensor& x, int64_t dim);
// tril keeps entries with col - row <= diagonal, triu those with col - row >= diagonal; any dtype.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);
}  // namespace lmlab
