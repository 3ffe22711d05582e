// Fast row sort. Each value becomes an unsigned key whose integer order is the float order with NaN
// largest (the usual sign-flip trick, as in radix sorts), and ties are broken by the element's
// position: that total order makes any sort (std::sort, nth_element) give exactly the stable result.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/sort_kernels.h"

namespace lmlab::cpu {

namespace {

// Order-preserving map float -> unsigned: negative values have all bits flipped, non-negative ones
// only the sign bit. -0.0 is folded into +0.0 (they compare equal) and every NaN maps to the maximum.
template <class T, class U>
U order_key(T v) {
  if (std::isnan(v)) return std::numeric_limits<U>::max();
  if (v == T(0)) v = T(0);
  U u;
  std::memcpy(&u, &v, sizeof(U));
  constexpr U sign = U(1) << (8 * sizeof(U) - 1);
  return (u & sign) ? U(~u) : U(u | sign);
}

// Puts the first k of the total order of `a` in front, sorted.
template <class E>
void sort_prefix(std::vector<E>& a, int64_t k) {
  int64_t n = int64_t(a.size());
  if (k < n / 8) {
    std::nth_element(a.begin(), a.begin() + k, a.end());
    std::sort(a.begin(), a.begin() + k);
  } else {
    std::sort(a.begin(), a.end());
  }
}

template <class T>
void sort_rows_t(const T* x, int64_t R, int64_t n, int64_t k, bool descending, T* values, int64_t* indices) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  // f32 keys and 32-bit positions pack into one uint64, so the sort compares plain integers.
  bool packed = sizeof(T) == 4 && n <= int64_t(std::numeric_limits<uint32_t>::max());
  int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1));
  parallel_for(0, R, grain, [&](int64_t lo, int64_t hi) {
    std::vector<uint64_t> pk;
    std::vector<std::pair<U, int64_t>> pr;
    for (int64_t r = lo; r < hi; ++r) {
      const T* row = x + r * n;
      T* vo = values + r * k;
      int64_t* io = indices + r * k;
      auto key = [&](int64_t i) {
        U u = order_key<T, U>(row[i]);
        return descending ? U(~u) : u;
      };
      if (packed) {
        pk.resize(size_t(n));
        for (int64_t i = 0; i < n; ++i) pk[size_t(i)] = (uint64_t(key(i)) << 32) | uint64_t(i);
        sort_prefix(pk, k);
        for (int64_t j = 0; j < k; ++j) io[j] = int64_t(pk[size_t(j)] & 0xffffffffu);
      } else {
        pr.resize(size_t(n));
        for (int64_t i = 0; i < n; ++i) pr[size_t(i)] = {key(i), i};
        sort_prefix(pr, k);
        for (int64_t j = 0; j < k; ++j) io[j] = pr[size_t(j)].second;
      }
      // Values are read back from the row so -0.0 and NaN payloads survive the key mapping.
      for (int64_t j = 0; j < k; ++j) vo[j] = row[io[j]];
    }
  });
}

}  // namespace

void sort_rows(DType dt, const void* x, int64_t R, int64_t n, int64_t k, bool descending, void* values,
               int64_t* indices) {
  if (dt == DType::F64)
    sort_rows_t(static_cast<const double*>(x), R, n, k, descending, static_cast<double*>(values), indices);
  else
    sort_rows_t(static_cast<const float*>(x), R, n, k, descending, static_cast<float*>(values), indices);
}

}  // namespace lmlab::cpu
