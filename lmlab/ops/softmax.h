// softmax / log_softmax along one dim (torch.softmax, torch.log_softmax). Fused row kernels with
// dedicated backwards: dx = y * (g - sum(g * y)) and dx = g - exp(y) * sum(g).
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
}  // namespace lmlab
