// Learning-rate schedules: linear warmup then cosine decay to min_lr (GPT-3 / nanoGPT style).
#pragma once
#include <cstdint>

namespace lmlab {

struct CosineSchedule {
  double max_lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = 100, total = 1000;
  double at(int64_t step) const;  // lr for optimizer step `step` (0-based)
};

}  // namespace lmlab
