// Scaled dot-product attention, fused and tiled (FlashAttention-2 style, Dao 2023): online softmax
// over key blocks, so no T x S score matrix is ever kept; the forward saves O and the per-row
// logsumexp [B, Hq, T] and the backward recomputes scores block by block.
//   q [B, Hq, T, D], k [B, Hkv, S, D], v [B, Hkv, S, Dv] -> [B, Hq, T, Dv]; Hq % Hkv == 0 (GQA:
//   query head h reads kv head h / (Hq / Hkv)).
// causal: query i sees keys j <= i + (S - T) (bottom-right aligned, so decoding with a cache works).
// window > 0: additionally j > i + (S - T) - window (sliding window of `window` keys, Mistral);
//   it needs causal = true, and window < 0 or window > 0 without causal raise ValueError.
// mask: optional additive f32/f64 mask broadcastable to [B, Hq, T, S] (e.g. padding, ALiBi).
// Semantics equal torch.nn.functional.scaled_dot_product_attention with the same masks.
// A query that sees no key (all hidden or mask -inf) gets output 0 and gradient 0, not NaN.
// Errors: ShapeError (ranks, B / D / Hkv / S disagreements, Hq % Hkv != 0, mask not broadcastable),
// DTypeError (dtype other than f32/f64, or q, k, v, mask dtypes differ).
#pragma once
#include "lmlab/core/tensor.h"

namespace lmlab {

struct AttentionOptions {
  bool causal = false;
  int64_t window = 0;  // 0 = unlimited
  double scale = 0.0;  // 0 = 1/sqrt(D)
  Tensor mask;         // additive, optional
};

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt = {});

// Bytes of scratch the last fused attention forward/backward allocated beyond inputs, outputs,
// the saved logsumexp and the gradients (per-thread tiles); lets benchmarks print peak extra memory.
size_t attention_last_workspace_bytes();

}  // namespace lmlab
