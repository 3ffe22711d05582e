// Warmup + cosine schedule.
#include "lmlab/train/schedule.h"

#include <algorithm>
#include <cmath>

namespace lmlab {

double CosineSchedule::at(int64_t step) const {
  if (warmup > 0 && step < warmup) return max_lr * double(step + 1) / double(warmup);
  if (step >= total) return min_lr;
  double p = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(M_PI * std::clamp(p, 0.0, 1.0)));
}

}  // namespace lmlab
