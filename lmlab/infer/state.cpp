// InferState bookkeeping.
#include "lmlab/infer/state.h"

namespace lmlab {

void InferState::truncate(int64_t n) {
  LMLAB_CHECK(n >= 0 && n <= length(), IndexError, "[infer] truncate to ", n, " outside [0, ", length(), "]");
  cache.truncate(n);
  tokens.resize(size_t(n));
}

}  // namespace lmlab
