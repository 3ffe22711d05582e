// Joining and splitting (torch.cat, torch.stack, torch.split, torch.chunk). split/chunk return
// views (narrow) of the input; concat/stack copy.
#pragma once
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {
// Inputs share dtype (any) and rank, and every size except along dim; an empty list is a ValueError.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);       // last piece may be smaller
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);           // torch.chunk sizing
}  // namespace lmlab
