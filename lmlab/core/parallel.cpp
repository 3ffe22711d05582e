// OpenMP-backed parallel_for. The thread count is shared with OpenBLAS (OpenMP build).
#include "lmlab/core/parallel.h"

#include <algorithm>
#include <exception>

#include <algorithm>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace lmlab {

int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

void parallel_for_impl(int64_t begin, int64_t end, int64_t grain,
                       const std::function<void(int64_t, int64_t)>& fn) {
  int64_t n = end - begin;
  int64_t nt = std::min<int64_t>(num_threads(), (n + grain - 1) / std::max<int64_t>(grain, 1));
  nt = std::max<int64_t>(nt, 1);
#ifdef _OPENMP
#pragma omp parallel num_threads(int(nt))
  {
    int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    int64_t chunk = (n + T - 1) / T;
    int64_t lo = begin + t * chunk, hi = std::min(end, lo + chunk);
    if (lo < hi) fn(lo, hi);
  }
#else
  fn(begin, end);
#endif
}

void parallel_tasks(int64_t n, const std::function<void(int64_t)>& task) {
  if (n <= 0) return;
  if (n == 1 || num_threads() == 1 || in_parallel_region()) {
    for (int64_t i = 0; i < n; ++i) task(i);
    return;
  }
  std::exception_ptr first;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(int(std::min<int64_t>(num_threads(), n)))
#endif
  for (int64_t i = 0; i < n; ++i) {
    try {
      task(i);
    } catch (...) {
#ifdef _OPENMP
#pragma omp critical(lmlab_parallel_tasks)
#endif
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace lmlab
