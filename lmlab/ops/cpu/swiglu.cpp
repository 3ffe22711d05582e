// Fast SwiGLU kernels (Shazeer 2020, "GLU Variants Improve Transformer"): one pass over gate and up
// for the forward, one for both gradients, so silu(gate) is never materialised.
#include <cmath>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/softmax_kernels.h"
#include "lmlab/ops/cpu/swiglu_kernels.h"

namespace lmlab::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;

// 1 / (1 + e^-x) needs no sign split. f32 uses exp_fast (vectorisable; its clamp at 88 makes the
// result ~6e-39 instead of 0 for x < -88, harmless here); f64 keeps libm's exp for gradchecks.
template <class S>
inline S sigmoid(S x) {
  return S(1) / (S(1) + exp_fast(-x));
}
}  // namespace

template <class S>
void swiglu_forward(const S* gate, const S* up, S* y, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = gate[i] * sigmoid(gate[i]) * up[i];
  });
}

template <class S>
void swiglu_backward(const S* g, const S* gate, const S* up, S* dgate, S* dup, int64_t n) {
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      S s = sigmoid(gate[i]);
      if (dgate) dgate[i] = g[i] * up[i] * s * (S(1) + gate[i] * (S(1) - s));
      if (dup) dup[i] = g[i] * gate[i] * s;
    }
  });
}

template void swiglu_forward<float>(const float*, const float*, float*, int64_t);
template void swiglu_forward<double>(const double*, const double*, double*, int64_t);
template void swiglu_backward<float>(const float*, const float*, const float*, float*, float*, int64_t);
template void swiglu_backward<double>(const double*, const double*, const double*, double*, double*, int64_t);

}  // namespace lmlab::cpu
