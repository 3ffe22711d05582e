// Fast matmul kernels (OpenBLAS for f32/f64, oneDNN for bf16).
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab::cpu {
Tensor matmul_forward(const Tensor& a, const Tensor& b, const Shape& batch, DType out_dt);
}
