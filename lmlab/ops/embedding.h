// Embedding lookup (torch.nn.functional.embedding): weight [V, C], ids (i64/i32, any shape) ->
// [..., C]. The backward scatters into the rows used only (sorted by id, so rows are summed
// without atomics); other rows' gradient stays zero. Ids out of [0, V) raise IndexError.
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {
Tensor embedding(const Tensor& weight, const Tensor& ids);
}  // namespace lmlab
