// Fast softmax / log_softmax kernels over contiguous rows [N, R]: threads over rows, lane-split
// reductions and exp_fast so every sweep vectorises. Each row is read twice (max, then exp-sum) and
// written once; the second read hits cache. Mirrors PyTorch's vectorised host_softmax.
#include <algorithm>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/softmax_kernels.h"

namespace lmlab::cpu {

namespace {
int64_t row_grain(int64_t R) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(R, 1)); }
}  // namespace

template <class T>
void softmax_forward(const T* x, T* y, int64_t N, int64_t R, bool log) {
  parallel_for(0, N, row_grain(R), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * R;
      T* yr = y + r * R;
      T m = row_max(xr, R);
      if (log) {
        T ls = T(std::log(lane_sum<T>(R, [&](int64_t j) { return exp_fast(xr[j] - m); })));
        // (x - m) - log s rather than x - (m + log s): keeps the small differences exact when |m| is large.
        for (int64_t j = 0; j < R; ++j) yr[j] = (xr[j] - m) - ls;
      } else {
        // Store the exps while summing them, so exp runs once per element.
        double s = lane_sum<T>(R, [&](int64_t j) {
          T e = exp_fast(xr[j] - m);
          yr[j] = e;
          return e;
        });
        T inv = T(1.0 / s);
        for (int64_t j = 0; j < R; ++j) yr[j] *= inv;
      }
    }
  });
}

template <class T>
void softmax_backward(const T* g, const T* y, T* gx, int64_t N, int64_t R, bool log) {
  parallel_for(0, N, row_grain(R), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* gr = g + r * R;
      const T* yr = y + r * R;
      T* o = gx + r * R;
      if (log) {
        T sg = T(lane_sum<T>(R, [&](int64_t j) { return gr[j]; }));
        for (int64_t j = 0; j < R; ++j) o[j] = gr[j] - exp_fast(yr[j]) * sg;
      } else {
        T dot = T(lane_sum<T>(R, [&](int64_t j) { return gr[j] * yr[j]; }));
        for (int64_t j = 0; j < R; ++j) o[j] = yr[j] * (gr[j] - dot);
      }
    }
  });
}

template void softmax_forward<float>(const float*, float*, int64_t, int64_t, bool);
template void softmax_forward<double>(const double*, double*, int64_t, int64_t, bool);
template void softmax_backward<float>(const float*, const float*, float*, int64_t, int64_t, bool);
template void softmax_backward<double>(const double*, const double*, double*, int64_t, int64_t, bool);

}  // namespace lmlab::cpu
