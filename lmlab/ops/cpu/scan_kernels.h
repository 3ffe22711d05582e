// Fast CPU kernels for cumsum and the triangular masks (ops/scan.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "lmlab/core/dtype.h"

namespace lmlab::cpu {

// x, out [O, n, I] contiguous f32/f64: out[o, j, i] = sum over t <= j (t >= j when reverse) of x[o, t, i].
// Accumulates in double so long f32 scans stay close to the reference.
void cumsum_forward(DType dt, const void* x, void* out, int64_t O, int64_t n, int64_t I, bool reverse);

// x, out [B, M, N] contiguous, es-byte elements: keeps entry (m, c) where c - m <= diagonal (lower)
// or c - m >= diagonal (upper) and writes zeros elsewhere.
void tri_forward(const void* x, void* out, int64_t B, int64_t M, int64_t N, int64_t diagonal, bool lower,
                 size_t es);

}  // namespace lmlab::cpu
