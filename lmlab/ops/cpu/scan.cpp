// Fast cumsum and tril/triu. cumsum: a serial scan per row when the scanned dim is innermost,
// otherwise a running row of accumulators updated with contiguous (vectorised) inner loops.
// tril/triu: per matrix row, one memcpy of the kept run and memsets of the zeroed runs.
#include <algorithm>
#include <cstring>
#include <vector>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/scan_kernels.h"

namespace lmlab::cpu {

namespace {

template <class T>
void cumsum_t(const T* x, T* out, int64_t O, int64_t n, int64_t I, bool reverse) {
  if (O * n * I == 0) return;
  if (I == 1) {
    parallel_for(0, O, std::max<int64_t>(1, 8192 / n), [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        const T* xr = x + o * n;
        T* orow = out + o * n;
        double acc = 0;
        if (reverse) {
          for (int64_t j = n - 1; j >= 0; --j) orow[j] = T(acc += xr[j]);
        } else {
          for (int64_t j = 0; j < n; ++j) orow[j] = T(acc += xr[j]);
        }
      }
    });
    return;
  }
  // Tasks are (o, inner block); each keeps its own accumulator row, so blocks are independent.
  int64_t nt = num_threads();
  int64_t B = O >= 4 * nt ? I : std::max<int64_t>(64, (I + 4 * nt - 1) / (4 * nt));
  B = std::min(B, I);
  int64_t nb = (I + B - 1) / B;
  parallel_for(0, O * nb, std::max<int64_t>(1, 8192 / (n * B)), [&](int64_t lo, int64_t hi) {
    std::vector<double> acc(static_cast<size_t>(B));
    for (int64_t t = lo; t < hi; ++t) {
      int64_t o = t / nb, i0 = (t % nb) * B, w = std::min(I, i0 + B) - i0;
      std::fill(acc.begin(), acc.begin() + w, 0.0);
      for (int64_t s = 0; s < n; ++s) {
        int64_t j = reverse ? n - 1 - s : s;
        const T* xr = x + (o * n + j) * I + i0;
        T* orow = out + (o * n + j) * I + i0;
        for (int64_t i = 0; i < w; ++i) {
          acc[size_t(i)] += xr[i];
          orow[i] = T(acc[size_t(i)]);
        }
      }
    }
  });
}

}  // namespace

void cumsum_forward(DType dt, const void* x, void* out, int64_t O, int64_t n, int64_t I, bool reverse) {
  if (dt == DType::F64) cumsum_t(static_cast<const double*>(x), static_cast<double*>(out), O, n, I, reverse);
  else cumsum_t(static_cast<const float*>(x), static_cast<float*>(out), O, n, I, reverse);
}

void tri_forward(const void* x, void* out, int64_t B, int64_t M, int64_t N, int64_t diagonal, bool lower,
                 size_t es) {
  if (B * M * N == 0) return;
  const uint8_t* xp = static_cast<const uint8_t*>(x);
  uint8_t* op = static_cast<uint8_t*>(out);
  parallel_for(0, B * M, std::max<int64_t>(1, 16384 / N), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t m = r % M;
      // Kept columns form one run [c0, c1): lower keeps c <= m + diagonal, upper keeps c >= m + diagonal.
      int64_t c0 = lower ? 0 : std::clamp<int64_t>(m + diagonal, 0, N);
      int64_t c1 = lower ? std::clamp<int64_t>(m + diagonal + 1, 0, N) : N;
      size_t row = size_t(r * N) * es;
      std::memset(op + row, 0, size_t(c0) * es);
      std::memcpy(op + row + size_t(c0) * es, xp + row + size_t(c0) * es, size_t(c1 - c0) * es);
      std::memset(op + row + size_t(c1) * es, 0, size_t(N - c1) * es);
    }
  });
}

}  // namespace lmlab::cpu
