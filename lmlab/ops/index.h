// Indexing ops (torch.gather, torch.scatter_add, torch.index_select, torch.nn.functional.one_hot).
// Index tensors are i64 or i32; out-of-range indices raise IndexError naming the op and the value.
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {
// index has x's rank and is no larger than x off `dim`; the output has index's shape. Negative
// indices are out of range (no wrap-around). gather and index_select work for every dtype.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// Returns x with src added at `index` along dim (out-of-place; differentiable in x and src).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// torch.index_add (out-of-place, alpha 1): x with src's slab k added to slab index[k] along dim.
// index is 1-D [K] (repeats accumulate); src has x's shape except size K along dim. Differentiable in
// x (identity) and src (index_select of the gradient): the combine step of mixture-of-experts.
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// [..., num_classes]; dtype i64 (torch) unless asked otherwise. Not differentiable.
// num_classes = -1 infers max(index) + 1, as torch does; negative class indices raise IndexError.
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype = DType::I64);
}  // namespace lmlab
