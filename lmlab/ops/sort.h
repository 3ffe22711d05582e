// Sorting (torch.sort, torch.argsort, torch.topk). Sorts are stable; NaN sorts as the largest
// value. Values are differentiable (the gradient scatters back through the indices), indices are i64.
#pragma once
#include <utility>

#include "lmlab/core/tensor.h"

namespace lmlab {
std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
// 0 <= k <= size along dim (ValueError otherwise); the first k of sort(x, dim, descending = largest).
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
}  // namespace lmlab
