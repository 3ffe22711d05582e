// Fast RoPE kernels (Su et al. 2021; HF apply_rotary_pos_emb). The cos/sin table [P, rot/2] is the
// only transcendental work (angles in double, then rounded to S); the rotation itself is a
// multiply-add over contiguous channel runs that GCC vectorises, parallel over the B*T rows.
#include <algorithm>
#include <cmath>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/rope_kernels.h"

namespace lmlab::cpu {

template <class S>
void rope_table(const int64_t* pos, int64_t P, const double* inv_freq, int64_t half, double attn, bool inverse,
                S* cos_t, S* sin_t) {
  double sin_scale = inverse ? -attn : attn;
  parallel_for(0, P, std::max<int64_t>(1, 2048 / std::max<int64_t>(half, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      for (int64_t i = 0; i < half; ++i) {
        // pos * inv_freq in double: at position 1e5 a float angle would already be off by ~1e-2 rad.
        double a = double(pos[p]) * inv_freq[i];
        cos_t[p * half + i] = S(std::cos(a) * attn);
        sin_t[p * half + i] = S(std::sin(a) * sin_scale);
      }
    }
  });
}

template <class S>
void rope_apply(const S* x, S* y, const S* cos_t, const S* sin_t, int64_t B, int64_t T, int64_t H, int64_t D,
                int64_t rot, bool interleaved, bool per_batch) {
  int64_t half = rot / 2;
  int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(H * D, 1));
  parallel_for(0, B * T, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t bt = lo; bt < hi; ++bt) {
      int64_t row = per_batch ? bt : bt % T;
      const S* cs = cos_t + row * half;
      const S* sn = sin_t + row * half;
      for (int64_t h = 0; h < H; ++h) {
        const S* xh = x + (bt * H + h) * D;
        S* yh = y + (bt * H + h) * D;
        if (interleaved) {
          for (int64_t i = 0; i < half; ++i) {
            S a = xh[2 * i], b = xh[2 * i + 1];
            yh[2 * i] = a * cs[i] - b * sn[i];
            yh[2 * i + 1] = b * cs[i] + a * sn[i];
          }
        } else {
          const S* x2 = xh + half;
          S* y2 = yh + half;
          for (int64_t i = 0; i < half; ++i) {
            S a = xh[i], b = x2[i];
            yh[i] = a * cs[i] - b * sn[i];
            y2[i] = b * cs[i] + a * sn[i];
          }
        }
        for (int64_t d = rot; d < D; ++d) yh[d] = xh[d];
      }
    }
  });
}

#define LMLAB_ROPE_INSTANTIATE(S)                                                                           \
  template void rope_table<S>(const int64_t*, int64_t, const double*, int64_t, double, bool, S*, S*);      \
  template void rope_apply<S>(const S*, S*, const S*, const S*, int64_t, int64_t, int64_t, int64_t, int64_t, \
                              bool, bool);
LMLAB_ROPE_INSTANTIATE(float)
LMLAB_ROPE_INSTANTIATE(double)
#undef LMLAB_ROPE_INSTANTIATE

}  // namespace lmlab::cpu
