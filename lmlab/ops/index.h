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
// [..., num_classes]; dtype i64 (torch) unless asked otherwise. Not differentiable.
// num_classes = -1 infers max(index) + 1, as torch does; negative class indices raise IndexError.
Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype = DType::I64);
}  // namespace lmlab
