// Fast embedding kernels. Forward: threads over looked-up rows, each a row copy. Backward: the
// (id, position) pairs are sorted, so every id's positions form one contiguous run; a run is summed
// by one thread, in position order, into its own row of dW: no atomics, and the result does not
// depend on the thread count (the same scheme as PyTorch's embedding_dense_backward on CPU).
#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/embedding_kernels.h"

namespace lmlab::cpu {

namespace {
int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)); }
}  // namespace

template <class T>
void embedding_forward(const T* w, int64_t ldw, const int64_t* ids, int64_t n, int64_t C, T* out) {
  parallel_for(0, n, row_grain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) std::memcpy(out + k * C, w + ids[k] * ldw, size_t(C) * sizeof(T));
  });
}

template <class T>
void embedding_backward(const T* g, const int64_t* ids, int64_t n, int64_t V, int64_t C, T* dw) {
  // Unused rows stay zero; the used ones are zeroed here too and then accumulated.
  parallel_for(0, V, row_grain(C), [&](int64_t lo, int64_t hi) {
    std::memset(dw + lo * C, 0, size_t((hi - lo) * C) * sizeof(T));
  });
  std::vector<std::pair<int64_t, int64_t>> pairs(static_cast<size_t>(n));  // (id, position)
  for (int64_t k = 0; k < n; ++k) pairs[size_t(k)] = {ids[k], k};
  std::sort(pairs.begin(), pairs.end());
  std::vector<int64_t> run_start;  // index into pairs where each id's run begins, plus the end
  for (int64_t k = 0; k < n; ++k)
    if (k == 0 || pairs[size_t(k)].first != pairs[size_t(k - 1)].first) run_start.push_back(k);
  run_start.push_back(n);
  const int64_t runs = int64_t(run_start.size()) - 1;
  parallel_for(0, runs, row_grain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      T* d = dw + pairs[size_t(run_start[size_t(r)])].first * C;
      for (int64_t k = run_start[size_t(r)]; k < run_start[size_t(r + 1)]; ++k) {
        const T* gr = g + pairs[size_t(k)].second * C;
        for (int64_t c = 0; c < C; ++c) d[c] += gr[c];
      }
    }
  });
}

template void embedding_forward<float>(const float*, int64_t, const int64_t*, int64_t, int64_t, float*);
template void embedding_forward<double>(const double*, int64_t, const int64_t*, int64_t, int64_t, double*);
template void embedding_backward<float>(const float*, const int64_t*, int64_t, int64_t, int64_t, float*);
template void embedding_backward<double>(const double*, const int64_t*, int64_t, int64_t, int64_t, double*);

}  // namespace lmlab::cpu
