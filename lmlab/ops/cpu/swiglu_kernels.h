// Fast CPU kernels for the SwiGLU gate (ops/cpu/swiglu.cpp): flat loops over n contiguous
// elements, parallel in fixed-size ranges.
#pragma once
#include <cstdint>

namespace lmlab::cpu {

// y = silu(gate) * up.
template <class S>
void swiglu_forward(const S* gate, const S* up, S* y, int64_t n);
// dgate = g * up * s * (1 + gate * (1 - s)), dup = g * silu(gate), s = sigmoid(gate); null = not needed.
template <class S>
void swiglu_backward(const S* g, const S* gate, const S* up, S* dgate, S* dup, int64_t n);

}  // namespace lmlab::cpu
