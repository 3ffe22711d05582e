// Fast concat kernel: memcpy of row blocks, OpenMP over (row, input) pairs so that a dim-0 concat
// (one row, few big blocks) still spreads its inputs over threads.
#include <algorithm>
#include <cstring>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/join_kernels.h"

namespace lmlab::cpu {

void concat_rows(const std::vector<const uint8_t*>& srcs, const std::vector<int64_t>& widths, uint8_t* out,
                 int64_t O) {
  int64_t K = int64_t(srcs.size());
  std::vector<int64_t> col(size_t(K) + 1, 0);  // byte column where input k starts in an output row
  for (int64_t k = 0; k < K; ++k) col[size_t(k + 1)] = col[size_t(k)] + widths[size_t(k)];
  int64_t total = col[size_t(K)];
  if (total == 0 || O == 0) return;
  // A task copies one block; aim for >= 64 KiB per thread chunk so small rows don't pay thread overhead.
  int64_t avg = std::max<int64_t>(1, total / K);
  int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / avg);
  parallel_for(0, O * K, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      int64_t o = t / K, k = t % K;
      int64_t w = widths[size_t(k)];
      if (w) std::memcpy(out + o * total + col[size_t(k)], srcs[size_t(k)] + o * w, size_t(w));
    }
  });
}

}  // namespace lmlab::cpu
