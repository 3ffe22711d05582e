// Fused attention kernels (FlashAttention-2, Dao 2023, Algorithms 1 and 2) shared by ops/attention.cpp
// (validation, `_ref` kernels, autograd) and ops/cpu/attention.cpp (the tiled fast kernels).
// Shapes: q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv], out [B, Hq, T, Dv], lse [B, Hq, T].
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

#include "lmlab/core/tensor.h"

namespace lmlab::cpu {

// Validated, resolved attention options: scale is final, mask (if defined) has the dtype of q and
// `mask_strides` view it as [B, Hq, T, S] (0 on broadcast dims).
struct AttentionParams {
  int64_t B = 0, Hq = 0, Hkv = 0, T = 0, S = 0, D = 0, Dv = 0;
  bool causal = false;
  int64_t window = 0;
  double scale = 1.0;
  Tensor mask;
  int64_t mask_strides[4] = {0, 0, 0, 0};

  int64_t group() const { return Hq / Hkv; }
  // Bottom-right alignment: query i sits at key position i + S - T.
  int64_t diag() const { return S - T; }
  // Whether query i may attend to key j under the causal / sliding-window rules (mask aside).
  bool visible(int64_t i, int64_t j) const {
    if (causal && j > i + diag()) return false;
    if (window > 0 && j <= i + diag() - window) return false;
    return true;
  }
};

// Tile sizes. q: query rows per tile, k: key rows per tile, splits: key-block groups per kv head
// in the backward and in the grouped decoding kernel (0 = choose from the thread count). Parameters
// so tests can force small tiles and several splits.
constexpr int64_t kAttnBlockQ = 64;
constexpr int64_t kAttnBlockK = 64;
struct AttentionBlocks {
  int64_t q = kAttnBlockQ;
  int64_t k = kAttnBlockK;
  int64_t splits = 0;
};

// The block sizes the next attention() call uses (captured by its autograd node for the backward).
// Tests shrink them with ScopedAttentionBlocks to exercise multi-tile paths on tiny shapes.
AttentionBlocks attention_blocks();
class ScopedAttentionBlocks {
 public:
  explicit ScopedAttentionBlocks(AttentionBlocks b);
  ~ScopedAttentionBlocks();
  ScopedAttentionBlocks(const ScopedAttentionBlocks&) = delete;
  ScopedAttentionBlocks& operator=(const ScopedAttentionBlocks&) = delete;

 private:
  AttentionBlocks prev_;
};

// Decoding kernels (ops/cpu/attention_decode.cpp): a few f32 query rows over strided cache views,
// without copying them; inference only (no lse, no backward). Query heads that share a kv head are
// handled together (each cached row read once per call); `blocks.k` is their key tile and
// `blocks.splits` the number of key ranges per kv head (0 = from the thread count).
bool attention_decode_supported(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p);
Tensor attention_decode_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                                const AttentionBlocks& blocks = {});

// Records the scratch of the latest forward/backward (read by attention_last_workspace_bytes()).
void set_attention_workspace_bytes(size_t bytes);

// Fast forward. Inputs may be any strided views; returns {out [B,Hq,T,Dv], lse [B,Hq,T]}, lse = -inf
// on rows that see no key (their output is 0).
std::pair<Tensor, Tensor> attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                            const AttentionParams& p, const AttentionBlocks& blocks = {});

struct AttentionGrads {
  Tensor dq, dk, dv;
};
// Fast backward from the saved out and lse; no gradient for the additive mask (the caller uses the
// reference backward when the mask requires grad).
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& grad_out, const AttentionParams& p,
                                  const AttentionBlocks& blocks = {});

}  // namespace lmlab::cpu
