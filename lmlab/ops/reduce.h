// Reductions over any set of axes (torch.sum/mean/amax/amin/argmax/logsumexp/var semantics).
// `dims` empty means all axes. max/min are torch.amax/amin: the gradient is split evenly among ties.
#pragma once
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {

Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Variance with Bessel-style `correction` (1 = unbiased, torch default).
Tensor var(const Tensor& x, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
// Index of the first maximum along `dim`, i64, no gradient.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace lmlab
