// SwiGLU gate (Shazeer 2020): silu(gate) * up, fused forward and backward. Same shapes (or broadcast).
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {
Tensor swiglu(const Tensor& gate, const Tensor& up);
}  // namespace lmlab
