// Fused cross-entropy row kernels (ops/cpu/cross_entropy.cpp): logits [N, V] contiguous, targets
// [N] i64 already range-checked by the op. The forward never materialises softmax; the backward
// writes (softmax - smoothed one-hot) * g straight into the gradient buffer.
#pragma once
#include <cstdint>

namespace lmlab::cpu {

struct CrossEntropyParams {
  int64_t ignore_index;
  double label_smoothing;  // eps
  double z_loss;           // z
};

// Per row i: lse[i] = logsumexp(x[i, :]) and row_loss[i] =
//   (1 - eps) (lse - x[i, t]) + eps (lse - mean_j x[i, j]) + z lse^2, or 0 (lse = 0) for ignored rows.
template <class T>
void cross_entropy_forward(const T* x, const int64_t* target, int64_t N, int64_t V, const CrossEntropyParams& p,
                           T* lse, double* row_loss);

// grad[i, :] = g_i ((1 + 2 z lse_i) softmax(x_i) - (1 - eps) onehot(t_i) - eps / V), zero for ignored
// rows, with g_i = g[i * g_stride] * g_scale (g_stride 0: one scalar upstream gradient).
template <class T>
void cross_entropy_backward(const T* x, const int64_t* target, const T* lse, const T* g, int64_t g_stride,
                            double g_scale, int64_t N, int64_t V, const CrossEntropyParams& p, T* grad);

}  // namespace lmlab::cpu
