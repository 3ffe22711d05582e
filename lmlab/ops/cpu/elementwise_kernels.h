// Fast elementwise kernels: flat OpenMP loops the compiler vectorises (-O3 -march=native).
#pragma once
#include <cstdint>

#include "lmlab/core/parallel.h"

namespace lmlab::cpu {

constexpr int64_t kEltGrain = 1 << 14;

template <class T, class F>
void unary_kernel(const T* x, T* y, int64_t n, const F& f) {
  parallel_for(0, n, kEltGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) y[i] = f.template f<T>(x[i]);
  });
}

template <class T, class F>
void unary_backward_kernel(const T* g, const T* x, const T* y, T* gx, int64_t n, const F& f) {
  parallel_for(0, n, kEltGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) gx[i] = g[i] * f.template d<T>(x[i], y[i]);
  });
}

template <class T, class F>
void binary_kernel_contig(const T* a, const T* b, T* o, int64_t n, const F& f) {
  parallel_for(0, n, kEltGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) o[i] = f.template f<T>(a[i], b[i]);
  });
}

template <class T, class F>
void binary_kernel_scalar_b(const T* a, T b, T* o, int64_t n, const F& f) {
  parallel_for(0, n, kEltGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) o[i] = f.template f<T>(a[i], b);
  });
}

template <class T, class F>
inline void binary_kernel_row(const T* a, int64_t sa, const T* b, int64_t sb, T* o, int64_t n, const F& f) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) o[i] = f.template f<T>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    T bv = b[0];
    for (int64_t i = 0; i < n; ++i) o[i] = f.template f<T>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    T av = a[0];
    for (int64_t i = 0; i < n; ++i) o[i] = f.template f<T>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) o[i] = f.template f<T>(a[i * sa], b[i * sb]);
  }
}

}  // namespace lmlab::cpu
