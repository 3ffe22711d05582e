// Fast RMSNorm / LayerNorm kernels: rows split across threads with parallel_for, inner loops the
// compiler vectorises. Row sums accumulate in double (8 independent lanes); RMSNorm's elementwise
// maths is in the input precision S like HF LlamaRMSNorm, LayerNorm centres x - mean in double.
// The backward follows llm.c layernorm_backward: dx per row, dweight/dbias as per-chunk partials.
#include <algorithm>
#include <cmath>
#include <vector>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/norm_kernels.h"

namespace lmlab::cpu {

namespace {

constexpr int64_t kGrainElems = 16384;  // elements per thread below which threading does not pay

// Sum of f(c) over c < C in double. Eight independent accumulators: without -ffast-math GCC will not
// reorder a single running sum, but it does vectorise this fixed-width lane loop, and the split
// also slows rounding-error growth.
template <class F>
inline double row_sum(int64_t C, const F& f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= C; c += 8)
    for (int k = 0; k < 8; ++k) acc[k] += f(c + k);
  double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; c < C; ++c) s += f(c);
  return s;
}

int64_t row_grain(int64_t C) { return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(C, 1)); }

// Number of row chunks for the backward. It depends only on the thread count and the problem size,
// never on scheduling, so the chunked weight/bias partial sums are deterministic for a thread count.
int64_t num_chunks(int64_t N, int64_t C) {
  int64_t by_work = std::max<int64_t>(1, N * C / kGrainElems);
  return std::max<int64_t>(1, std::min<int64_t>({int64_t(num_threads()), N, by_work}));
}

// Sums the P partial rows [P, C] into out [C] in chunk order.
template <class S>
void sum_partials(const std::vector<double>& part, int64_t P, int64_t C, S* out) {
  std::vector<double> s(part.begin(), part.begin() + C);
  for (int64_t p = 1; p < P; ++p)
    for (int64_t c = 0; c < C; ++c) s[size_t(c)] += part[size_t(p * C + c)];
  for (int64_t c = 0; c < C; ++c) out[c] = S(s[size_t(c)]);
}

}  // namespace

template <class S>
void rms_norm_forward(const S* x, const S* w, S* y, S* rstd, int64_t N, int64_t C, double eps) {
  // A ones weight keeps one branch-free inner loop (multiplying by 1 is exact).
  std::vector<S> ones;
  if (!w) {
    ones.assign(size_t(C), S(1));
    w = ones.data();
  }
  parallel_for(0, N, row_grain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const S* xr = x + n * C;
      S* yr = y + n * C;
      double ss = row_sum(C, [xr](int64_t c) { return double(xr[c]) * double(xr[c]); });
      S r = S(1.0 / std::sqrt(ss / double(C) + eps));
      rstd[n] = r;
      for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] * r) * w[c];
    }
  });
}

// d/dx of x_c * r * w_c with r = (mean(x^2) + eps)^(-1/2):
//   dx_c = r * g_c * w_c - r^3 / C * x_c * sum_j g_j w_j x_j,   dw_c = sum_rows g_c * x_c * r.
template <class S>
void rms_norm_backward(const S* g, const S* x, const S* w, const S* rstd, S* dx, S* dw, int64_t N, int64_t C) {
  std::vector<S> ones;
  if (!w) {
    ones.assign(size_t(C), S(1));
    w = ones.data();
  }
  if (N == 0) {
    if (dw) std::fill(dw, dw + C, S(0));
    return;
  }
  int64_t P = num_chunks(N, C);
  std::vector<double> part(dw ? size_t(P * C) : 0, 0.0);
  parallel_for(0, P, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      double* acc = dw ? part.data() + p * C : nullptr;
      for (int64_t n = p * N / P; n < (p + 1) * N / P; ++n) {
        const S* gr = g + n * C;
        const S* xr = x + n * C;
        S r = rstd[n];
        if (dx) {
          double dot = row_sum(C, [&](int64_t c) { return double(gr[c]) * double(w[c]) * double(xr[c]); });
          S k = S(double(r) * double(r) * double(r) * dot / double(C));
          S* dxr = dx + n * C;
          for (int64_t c = 0; c < C; ++c) dxr[c] = r * gr[c] * w[c] - k * xr[c];
        }
        if (acc)
          for (int64_t c = 0; c < C; ++c) acc[c] += double(gr[c]) * double(xr[c]) * double(r);
      }
    }
  });
  if (dw) sum_partials(part, P, C, dw);
}

template <class S>
void layer_norm_forward(const S* x, const S* w, const S* b, S* y, S* mean, S* rstd, int64_t N, int64_t C,
                        double eps) {
  std::vector<S> ones, zeros;
  if (!w) {
    ones.assign(size_t(C), S(1));
    w = ones.data();
  }
  if (!b) {
    zeros.assign(size_t(C), S(0));
    b = zeros.data();
  }
  parallel_for(0, N, row_grain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const S* xr = x + n * C;
      S* yr = y + n * C;
      // Two passes (mean, then squared deviations) avoid E[x^2] - mean^2 cancellation; the row is in cache.
      double mu = row_sum(C, [xr](int64_t c) { return double(xr[c]); }) / double(C);
      double var = row_sum(C, [xr, mu](int64_t c) {
                     double d = double(xr[c]) - mu;
                     return d * d;
                   }) / double(C);
      double r = 1.0 / std::sqrt(var + eps);
      mean[n] = S(mu);
      rstd[n] = S(r);
      for (int64_t c = 0; c < C; ++c) yr[c] = S((double(xr[c]) - mu) * r) * w[c] + b[c];
    }
  });
}

// With xhat = (x - mean) * r and dxhat = g * w:
//   dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dw = sum_rows g * xhat,  db = sum_rows g.
template <class S>
void layer_norm_backward(const S* g, const S* x, const S* w, const S* mean, const S* rstd, S* dx, S* dw, S* db,
                         int64_t N, int64_t C) {
  std::vector<S> ones;
  if (!w) {
    ones.assign(size_t(C), S(1));
    w = ones.data();
  }
  if (N == 0) {
    if (dw) std::fill(dw, dw + C, S(0));
    if (db) std::fill(db, db + C, S(0));
    return;
  }
  int64_t P = num_chunks(N, C);
  std::vector<double> part_w(dw ? size_t(P * C) : 0, 0.0), part_b(db ? size_t(P * C) : 0, 0.0);
  parallel_for(0, P, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      double* acc_w = dw ? part_w.data() + p * C : nullptr;
      double* acc_b = db ? part_b.data() + p * C : nullptr;
      for (int64_t n = p * N / P; n < (p + 1) * N / P; ++n) {
        const S* gr = g + n * C;
        const S* xr = x + n * C;
        double mu = double(mean[n]), r = double(rstd[n]);
        if (dx) {
          double a = row_sum(C, [&](int64_t c) { return double(gr[c]) * double(w[c]); }) / double(C);
          double bm = row_sum(C, [&](int64_t c) {
                        return double(gr[c]) * double(w[c]) * ((double(xr[c]) - mu) * r);
                      }) / double(C);
          S* dxr = dx + n * C;
          for (int64_t c = 0; c < C; ++c) {
            double xhat = (double(xr[c]) - mu) * r;
            dxr[c] = S(r * (double(gr[c]) * double(w[c]) - a - xhat * bm));
          }
        }
        if (acc_w)
          for (int64_t c = 0; c < C; ++c) acc_w[c] += double(gr[c]) * ((double(xr[c]) - mu) * r);
        if (acc_b)
          for (int64_t c = 0; c < C; ++c) acc_b[c] += double(gr[c]);
      }
    }
  });
  if (dw) sum_partials(part_w, P, C, dw);
  if (db) sum_partials(part_b, P, C, db);
}

#define LMLAB_NORM_INSTANTIATE(S)                                                                          \
  template void rms_norm_forward<S>(const S*, const S*, S*, S*, int64_t, int64_t, double);               \
  template void rms_norm_backward<S>(const S*, const S*, const S*, const S*, S*, S*, int64_t, int64_t);  \
  template void layer_norm_forward<S>(const S*, const S*, const S*, S*, S*, S*, int64_t, int64_t, double); \
  template void layer_norm_backward<S>(const S*, const S*, const S*, const S*, const S*, S*, S*, S*, int64_t, \
                                       int64_t);
LMLAB_NORM_INSTANTIATE(float)
LMLAB_NORM_INSTANTIATE(double)
#undef LMLAB_NORM_INSTANTIATE

}  // namespace lmlab::cpu
