// Fused cross-entropy over a vocabulary: logits [N, V], target [N] (i64/i32) -> loss.
// Semantics of torch.nn.functional.cross_entropy (ignore_index, label_smoothing, reduction),
// plus PaLM's z-loss (z_loss * logsumexp(logits)^2 per row, averaged like the loss).
// The forward keeps only the per-row logsumexp [N]; the backward writes softmax - target directly
// into the gradient: no second vocabulary-sized buffer exists at any time.
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {

enum class Reduction { Mean, Sum, None };

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;  // in [0, 1]
  double z_loss = 0.0;           // >= 0
  Reduction reduction = Reduction::Mean;  // Mean divides by the number of non-ignored rows
                                          // (all rows ignored: loss 0, where torch gives nan)
};

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& opt = {});

}  // namespace lmlab
