// Inverted dropout (torch.nn.functional.dropout): zero each element with probability p and scale
// the rest by 1/(1-p). The mask comes from the counter-based generator, so it does not depend on
// the thread count. Identity when !training or p == 0.
#pragma once
#include "lmlab/core/rng.h"
#include "lmlab/core/tensor.h"

namespace lmlab {
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
}  // namespace lmlab
