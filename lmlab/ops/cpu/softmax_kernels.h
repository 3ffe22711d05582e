// Fast row kernels for softmax / log_softmax (ops/cpu/softmax.cpp) and the row primitives they share
// with the fused cross-entropy: a vectorisable expf, lane-split max and sums. Rows are contiguous [N, R].
// expf: Cody-Waite range reduction and the Cephes expf polynomial (S. Moshier, Cephes Math Library).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace lmlab::cpu {

// Independent partial results per row (two 512-bit vectors). The compiler may not reorder float
// additions or max without -ffast-math, so a plain `s += x[i]` loop stays scalar; W separate
// accumulators are a reassociation we choose ourselves, and the fixed inner loop becomes SIMD.
template <class T>
inline constexpr int kLanes = int(128 / sizeof(T));

// a * b + c: one instruction with FMA hardware. Without it (LMLAB_PORTABLE) std::fma is a slow libm
// call that blocks vectorisation, and exp_fast does not need the single rounding.
inline float madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// exp(x) for x <= 88; relative error at most 8.4e-8 against exp in double, checked over every float
// in [-87.33, 0] (a correctly rounded expf reaches 6e-8).
// Pure arithmetic and bit casts, so loops calling it vectorise (glibc's SIMD expf is only declared
// under -ffast-math). x < ln(FLT_MIN) returns 0 instead of a subnormal (absolute error < 1.2e-38);
// NaN stays NaN; -inf gives 0. Callers pass x - max (<= 0).
inline float exp_fast(float x) {
  constexpr float kLo = -87.33654f, kHi = 88.0f;
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits
  float xc = x < kLo ? kLo : x;  // NaN compares false and passes through
  xc = xc > kHi ? kHi : xc;
  float kf = madd(xc, 1.44269504088896341f, kMagic);
  float n = kf - kMagic;
  // ln 2 split in two (C1 has few mantissa bits, so n * C1 is exact): r = x - n ln 2, |r| <= ln2 / 2.
  float r = madd(n, -0.693359375f, xc);
  r = madd(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = madd(p, r, 1.3981999507e-3f);
  p = madd(p, r, 8.3334519073e-3f);
  p = madd(p, r, 4.1665795894e-2f);
  p = madd(p, r, 1.6666665459e-1f);
  p = madd(p, r, 5.0000001201e-1f);
  p = madd(p, r * r, r) + 1.0f;
  // 2^n from the exponent field; n in [-126, 127] after the clamp, so the biased exponent is valid.
  int32_t ni = std::bit_cast<int32_t>(kf) - std::bit_cast<int32_t>(kMagic);
  float scale = std::bit_cast<float>((ni + 127) << 23);
  return x < kLo ? 0.0f : p * scale;
}
// f64 kernels keep libm's exp: they serve gradchecks, where accuracy matters more than speed.
inline double exp_fast(double x) { return std::exp(x); }

// max over x[0, n); NaNs are skipped here (they reach the result through the exp sums instead).
template <class T>
inline T row_max(const T* x, int64_t n) {
  constexpr int W = kLanes<T>;
  T acc[W];
  for (int k = 0; k < W; ++k) acc[k] = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + W <= n; i += W)
    for (int k = 0; k < W; ++k) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
  T m = -std::numeric_limits<T>::infinity();
  for (int k = 0; k < W; ++k) m = acc[k] > m ? acc[k] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// Rounds of W-lane accumulation in T before the lanes are flushed into double lanes: a float sum
// then carries the rounding error of ~kRounds additions, not of n / W (2e-6 relative at n = 32000).
inline constexpr int kRounds = 8;

// Sum over i in [0, n) of f(i): W lanes in T, flushed every kRounds rounds into W double lanes.
template <class T, class F>
inline double lane_sum(int64_t n, const F& f) {
  constexpr int W = kLanes<T>;
  constexpr int64_t B = int64_t(W) * kRounds;
  double wide[W] = {};
  int64_t i = 0;
  for (; i + B <= n; i += B) {
    T acc[W] = {};
    for (int b = 0; b < kRounds; ++b)
      for (int k = 0; k < W; ++k) acc[k] += f(i + b * W + k);
    for (int k = 0; k < W; ++k) wide[k] += double(acc[k]);
  }
  T acc[W] = {};
  for (; i + W <= n; i += W)
    for (int k = 0; k < W; ++k) acc[k] += f(i + k);
  double s = 0;
  for (int k = 0; k < W; ++k) s += wide[k] + double(acc[k]);
  for (; i < n; ++i) s += double(f(i));
  return s;
}

// [N, R] rows: y = softmax(x) or log_softmax(x) along R.
template <class T>
void softmax_forward(const T* x, T* y, int64_t N, int64_t R, bool log);
// gx = y * (g - sum(g * y))  (softmax), or gx = g - exp(y) * sum(g)  (log_softmax; y is its output).
template <class T>
void softmax_backward(const T* g, const T* y, T* gx, int64_t N, int64_t R, bool log);

}  // namespace lmlab::cpu
