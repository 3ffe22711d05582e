// Fast embedding kernels (ops/cpu/embedding.cpp): weight [V, C] with unit column stride (row stride
// ldw), ids [n] i64 already range-checked by the op, contiguous rows [n, C] of output / upstream gradient.
#pragma once
#include <cstdint>

namespace lmlab::cpu {

// out[k, :] = w[ids[k], :]
template <class T>
void embedding_forward(const T* w, int64_t ldw, const int64_t* ids, int64_t n, int64_t C, T* out);

// dw [V, C] = 0, then dw[ids[k], :] += g[k, :] for every k; deterministic for any thread count.
template <class T>
void embedding_backward(const T* g, const int64_t* ids, int64_t n, int64_t V, int64_t C, T* dw);

}  // namespace lmlab::cpu
