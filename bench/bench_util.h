// Small timing helpers shared by the bench_*.cpp programs: median wall time of repeated runs.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

namespace lmlab::bench {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of `reps` runs of f after `warmup` runs.
inline double median_time(const std::function<void()>& f, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    double t0 = now_s();
    f();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Runs a and b alternately (so drift and the other core's load hit both alike); medians.
inline std::pair<double, double> median_time_pair(const std::function<void()>& a, const std::function<void()>& b,
                                                  int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) { a(); b(); }
  std::vector<double> ta, tb;
  for (int i = 0; i < reps; ++i) {
    double t0 = now_s();
    a();
    double t1 = now_s();
    b();
    double t2 = now_s();
    ta.push_back(t1 - t0);
    tb.push_back(t2 - t1);
  }
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  return {ta[ta.size() / 2], tb[tb.size() / 2]};
}

inline void result(const char* name, double value, const char* unit) {
  std::printf("RESULT %s %.6g %s\n", name, value, unit);
  std::fflush(stdout);
}

}  // namespace lmlab::bench
