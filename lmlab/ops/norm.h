// Normalisations over the last dim, fused forward and backward (the forward saves the per-row
// rstd (and mean) only, as llm.c does).
//   rms_norm:   y = x / sqrt(mean(x^2) + eps) * weight          (Zhang & Sennrich 2019; HF LlamaRMSNorm)
//   layer_norm: y = (x - mean) / sqrt(var + eps) * weight + bias (torch.nn.functional.layer_norm)
// weight / bias are [C] and optional (undefined = none). x may be any layout (copied when not contiguous).
// Precision: row statistics accumulate in double; rms_norm's products run in x's dtype (f32 or f64),
// as HF LlamaRMSNorm does in f32; layer_norm centres x - mean in double before rounding.
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
}  // namespace lmlab
