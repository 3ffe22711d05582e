// Fused cross-entropy kernels: threads over rows. Forward: an online logsumexp over L1-sized chunks
// (one pass over the row from memory; Milakov & Gimelshein, "Online normalizer calculation for
// softmax", 2018) that also gathers x[t] and sum(x) for label smoothing. Backward: one sweep that
// recomputes exp(x - lse) and writes the gradient, as Liger-Kernel's fused linear cross-entropy does.
#include <algorithm>
#include <cstring>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/cross_entropy_kernels.h"
#include "lmlab/ops/cpu/softmax_kernels.h"

namespace lmlab::cpu {

namespace {

// Elements per online-rescale step: 8 KiB of f32 stays in L1 between the chunk's max and exp sweeps.
constexpr int64_t kChunk = 2048;

int64_t row_grain(int64_t V) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(V, 1)); }

// The gradient is a fresh [N, V] buffer (512 MB at N = 4096, V = 32000) whose first touch costs a
// page fault per 4 KiB page, as much as the kernel itself here; transparent huge pages (Linux,
// "madvise" mode) cut the faults 512x. Applied to the 2 MiB-aligned interior; a no-op elsewhere.
void advise_huge_pages(void* p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < 4 * kHuge) return;  // small buffers live in malloc's heap; leave its pages alone
  uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

// logsumexp of one row, plus the row sum when with_sum (label smoothing).
template <class T>
void row_lse(const T* x, int64_t V, bool with_sum, double& lse, double& sum_x) {
  T m = -std::numeric_limits<T>::infinity();
  double s = 0, sx = 0;
  for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
    const T* xc = x + c0;
    int64_t n = std::min(kChunk, V - c0);
    T cm = row_max(xc, n);
    if (cm > m) {
      // The running sum was taken relative to the old max; rescale it to the new one.
      s *= std::exp(double(m) - double(cm));
      m = cm;
    }
    if (m == -std::numeric_limits<T>::infinity()) {
      // Every logit so far is -inf: exp(-inf - m) would be NaN, but each term is really 0.
      if (with_sum) sx += lane_sum<T>(n, [&](int64_t j) { return xc[j]; });
      continue;
    }
    s += lane_sum<T>(n, [&](int64_t j) { return exp_fast(xc[j] - m); });
    // A second sweep of the chunk, still in L1, only when label smoothing needs it.
    if (with_sum) sx += lane_sum<T>(n, [&](int64_t j) { return xc[j]; });
  }
  lse = double(m) + std::log(s);
  sum_x = sx;
}

}  // namespace

template <class T>
void cross_entropy_forward(const T* x, const int64_t* target, int64_t N, int64_t V, const CrossEntropyParams& p,
                           T* lse, double* row_loss) {
  const double eps = p.label_smoothing, z = p.z_loss;
  parallel_for(0, N, row_grain(V), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      int64_t t = target[i];
      if (t == p.ignore_index) {
        lse[i] = T(0);
        row_loss[i] = 0;
        continue;
      }
      const T* xr = x + i * V;
      double l, sx;
      row_lse(xr, V, eps > 0, l, sx);
      lse[i] = T(l);
      double loss = (1 - eps) * (l - double(xr[t]));
      if (eps > 0) loss += eps * (l - sx / double(V));
      if (z > 0) loss += z * l * l;
      row_loss[i] = loss;
    }
  });
}

template <class T>
void cross_entropy_backward(const T* x, const int64_t* target, const T* lse, const T* g, int64_t g_stride,
                            double g_scale, int64_t N, int64_t V, const CrossEntropyParams& p, T* grad) {
  const double eps = p.label_smoothing, z = p.z_loss;
  advise_huge_pages(grad, size_t(N * V) * sizeof(T));
  parallel_for(0, N, row_grain(V), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T* gr = grad + i * V;
      int64_t t = target[i];
      if (t == p.ignore_index) {
        std::memset(gr, 0, size_t(V) * sizeof(T));
        continue;
      }
      const T* xr = x + i * V;
      const T l = lse[i];
      double gi = double(g[i * g_stride]) * g_scale;
      // d/dx of z lse^2 is 2 z lse softmax: it folds into the softmax coefficient.
      const T a = T(gi * (1 + 2 * z * double(l)));
      const T b = T(gi * eps / double(V));
      for (int64_t j = 0; j < V; ++j) gr[j] = a * exp_fast(xr[j] - l) - b;
      gr[t] -= T(gi * (1 - eps));
    }
  });
}

template void cross_entropy_forward<float>(const float*, const int64_t*, int64_t, int64_t, const CrossEntropyParams&,
                                           float*, double*);
template void cross_entropy_forward<double>(const double*, const int64_t*, int64_t, int64_t,
                                            const CrossEntropyParams&, double*, double*);
template void cross_entropy_backward<float>(const float*, const int64_t*, const float*, const float*, int64_t, double,
                                            int64_t, int64_t, const CrossEntropyParams&, float*);
template void cross_entropy_backward<double>(const double*, const int64_t*, const double*, const double*, int64_t,
                                             double, int64_t, int64_t, const CrossEntropyParams&, double*);

}  // namespace lmlab::cpu
