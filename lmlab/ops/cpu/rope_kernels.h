// Fast CPU kernels for rotary position embedding (ops/cpu/rope.cpp): a cos/sin table built once per
// call, then every (b, t) row of x [B, T, H, D] rotated in parallel. Pairing is HF rotate_half
// (i, i + rot/2) or interleaved (2i, 2i + 1); channels [rot, D) pass through unchanged.
#pragma once
#include <cstdint>

namespace lmlab::cpu {

// cos_t/sin_t [P, half]: angle = pos[p] * inv_freq[i] in double, both scaled by `attn`; sin is
// negated when `inverse` (rotation by the negative angle, the backward).
template <class S>
void rope_table(const int64_t* pos, int64_t P, const double* inv_freq, int64_t half, double attn, bool inverse,
                S* cos_t, S* sin_t);

// y = rope(x) for contiguous x, y [B, T, H, D]. Table row for (b, t) is b * T + t when `per_batch`
// (positions [B, T]), else t.
template <class S>
void rope_apply(const S* x, S* y, const S* cos_t, const S* sin_t, int64_t B, int64_t T, int64_t H, int64_t D,
                int64_t rot, bool interleaved, bool per_batch);

}  // namespace lmlab::cpu
