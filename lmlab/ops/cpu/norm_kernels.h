// Fast CPU kernels for RMSNorm and LayerNorm over the last dim (ops/cpu/norm.cpp). x is a
// contiguous [N, C] block of rows; weight/bias are [C] or null. Row statistics accumulate in
// double, elementwise maths runs in the input precision S (float or double).
// Mirrors llm.c layernorm_forward/backward and ggml's rms_norm / rms_norm_back.
#pragma once
#include <cstdint>

namespace lmlab::cpu {

// y = x * rstd * w; rstd[n] = 1 / sqrt(mean_c x^2 + eps).
template <class S>
void rms_norm_forward(const S* x, const S* w, S* y, S* rstd, int64_t N, int64_t C, double eps);
// dx (null = not needed) and dw (null = no weight or not needed) from the upstream g [N, C].
template <class S>
void rms_norm_backward(const S* g, const S* x, const S* w, const S* rstd, S* dx, S* dw, int64_t N, int64_t C);

// y = (x - mean) * rstd * w + b; mean[n], rstd[n] = 1 / sqrt(biased var + eps).
template <class S>
void layer_norm_forward(const S* x, const S* w, const S* b, S* y, S* mean, S* rstd, int64_t N, int64_t C,
                        double eps);
template <class S>
void layer_norm_backward(const S* g, const S* x, const S* w, const S* mean, const S* rstd, S* dx, S* dw, S* db,
                         int64_t N, int64_t C);

}  // namespace lmlab::cpu
