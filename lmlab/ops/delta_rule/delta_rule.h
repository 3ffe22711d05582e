// The gated delta rule family (spec: shared/papers/kimi-linear.md): a matrix-valued state per head,
// S in R^{dk x dv}, updated per token t as
//     S'_t = Diag(exp(g_t)) S_{t-1}                      (decay first; g_t = log alpha_t <= 0)
//     S_t  = S'_t + beta_t k_t (v_t - S'_t^T k_t)^T       (delta-rule correction on the decayed state)
//     o_t  = S_t^T (scale * q_t)
// Gates: channel-wise g [B, T, H, dk] (Kimi Delta Attention), scalar per head g [B, T, H] (Gated
// DeltaNet), or none (DeltaNet: g undefined, alpha = 1). beta [B, T, H] in [0, 1].
// Three implementations with one meaning: the step-by-step recurrence (reference, any float dtype,
// f64 for gradient checks), the per-step kernel for decoding, and the chunk-parallel WY/UT form for
// training and prefill; the recurrent and chunked forms are differentiable in q, k, v, g, beta and
// the initial state (o and the final state both carry gradients). Derivations: README.md here.
#pragma once
#include <optional>

#include "lmlab/core/tensor.h"

namespace lmlab {

struct DeltaRuleOptions {
  double scale = 0.0;      // multiplies q; 0 = 1/sqrt(dk)
  int64_t chunk_size = 64;  // chunked form only
  enum class Impl { Auto, Recurrent, Chunked } impl = Impl::Auto;  // Auto: chunked when T > 64 (fla)
};

// Auto takes the chunked form from this many tokens on (T > 64, as fla/layers/delta_net.py).
inline constexpr int64_t kDeltaRuleChunkedMinT = 65;

struct DeltaRuleResult {
  Tensor o;            // [B, T, H, dv]
  Tensor final_state;  // [B, H, dk, dv]
};

// q, k [B, T, H, dk]; v [B, T, H, dv]; g [B, T, H, dk] or [B, T, H] or undefined; beta [B, T, H];
// initial_state [B, H, dk, dv] or undefined (zeros). Throws ShapeError naming the argument.
DeltaRuleResult gated_delta_rule(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                 const Tensor& beta, const Tensor& initial_state = Tensor(),
                                 const DeltaRuleOptions& opt = {});

// The step-by-step recurrence (the reference): plain loops with a double-precision state, one
// (b, h) pair per thread (serial in reference mode). Backward: reverse-time recurrence
// (lmlab/ops/delta_rule/README.md). Ignores opt.impl and opt.chunk_size.
DeltaRuleResult gated_delta_rule_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                           const Tensor& beta, const Tensor& initial_state = Tensor(),
                                           const DeltaRuleOptions& opt = {});

// The chunk-parallel WY/UT form (Kimi Linear Eqs. 4-9) with chunk size opt.chunk_size (any T; the
// last chunk is shorter), BLAS GEMMs inside a chunk and OpenMP over B*H; the backward recomputes
// each chunk from the chunk-start states kept by the forward. In reference mode it runs the
// recurrent reference instead (the op table compares the two).
DeltaRuleResult gated_delta_rule_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                         const Tensor& beta, const Tensor& initial_state = Tensor(),
                                         const DeltaRuleOptions& opt = {});

// Decoding: runs the T (usually 1) tokens through the recurrence with single-precision
// accumulation in the input dtype and no autograd (throws AutogradError when grad mode is on and an
// input requires grad). A contiguous `state` [B, H, dk, dv] (the inputs' dtype) is updated in
// place and returned as final_state (the KDA layer's cache); a non-contiguous one is copied first
// and left as it was; an undefined one starts from zeros. Same shapes as above.
DeltaRuleResult gated_delta_rule_step(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                      const Tensor& beta, const Tensor& state, const DeltaRuleOptions& opt = {});

}  // namespace lmlab
