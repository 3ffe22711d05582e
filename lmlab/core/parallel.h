// parallel_for over OpenMP. Work is split into contiguous ranges [lo, hi); `grain` is the
// smallest range worth a thread. Never throw from `fn` (exceptions cannot leave an OpenMP region).
#pragma once
#include <cstdint>
#include <functional>

namespace lmlab {

int num_threads();
void set_num_threads(int n);
bool in_parallel_region();

void parallel_for_impl(int64_t begin, int64_t end, int64_t grain,
                       const std::function<void(int64_t, int64_t)>& fn);

template <class F>
inline void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& fn) {
  if (end <= begin) return;
  if (end - begin <= grain || num_threads() == 1 || in_parallel_region()) {
    fn(begin, end);
    return;
  }
  parallel_for_impl(begin, end, grain, std::function<void(int64_t, int64_t)>(fn));
}

// Runs task(0) .. task(n - 1) on the thread pool, each task on one thread, handed out one at a time
// (dynamic schedule: put the biggest tasks first). For several independent medium-sized jobs (the
// experts of an MoE layer) this beats running them one after another with every thread inside each:
// no per-op synchronisation. Inside a task, nested parallel_for / BLAS calls run single-threaded.
// An exception thrown by a task is rethrown here (the first one) after every task has ended.
void parallel_tasks(int64_t n, const std::function<void(int64_t)>& task);

}  // namespace lmlab
