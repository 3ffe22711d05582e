// Linear-attention token mixers built on the gated delta rule (spec: shared/papers/kimi-linear.md;
// layer as fla/layers/kda.py and Kimi-Linear's HF KimiDeltaAttention). One class, four mixers that
// differ only in the state transition, so ablations change nothing else:
//   KDA       S_t = (I - b k k^T) Diag(alpha_t) S_{t-1} + b k v^T, alpha_t per key channel (Kimi Delta Attention)
//   GDN       the same with one alpha_t per head (Gated DeltaNet, Yang et al. 2024)
//   DeltaNet  alpha_t = 1 (Schlag et al. 2021; Yang et al. 2024)
//   GLA       S_t = Diag(alpha_t) S_{t-1} + k v^T: channel-gated linear attention without the delta
//             correction (no beta), for the recall ablations
// Layer: q, k = L2Norm(SiLU(ShortConv_K(W x))), v = SiLU(ShortConv_K(W_v x)), beta = sigmoid(W_b x),
// log-gate g = -exp(A_log) * softplus(f + dt_bias) with f = f_b_proj(f_a_proj(x)) (KDA, GLA; low rank =
// head_dim) or f = a_proj(x) (GDN), output o_proj(RMSNorm_head(o) * sigmoid(g_b_proj(g_a_proj(x)))).
// Parameter names are Kimi-Linear's: q_proj k_proj v_proj, q_conv1d k_conv1d v_conv1d ([C, 1, K], no
// bias), A_log ([1, 1, H, 1]), f_a_proj f_b_proj, dt_bias ([H * dk]), b_proj, g_a_proj g_b_proj, o_norm,
// o_proj; GDN uses fla's a_proj, A_log [H] and dt_bias [H] instead of f_a/f_b. Unlike fla's GatedDeltaNet
// layer, GDN here keeps KDA's low-rank sigmoid output gate (only the transition differs).
#pragma once
#include <string>

#include "lmlab/core/rng.h"
#include "lmlab/nn/cache.h"
#include "lmlab/nn/layers.h"

namespace lmlab {

enum class LinearMixer { KDA, GDN, DeltaNet, GLA };
const char* linear_mixer_name(LinearMixer m);  // "kda", "gdn", "deltanet", "gla"

struct DeltaAttentionConfig {
  LinearMixer mixer = LinearMixer::KDA;
  int64_t hidden = 256;        // C
  int64_t n_heads = 4;         // H
  int64_t head_dim = 64;       // dk = dv (Kimi: 128)
  int64_t conv_size = 4;       // short convolution kernel; 0 = none (the "no conv" ablation)
  double norm_eps = 1e-6;      // o_norm
  int64_t chunk_size = 64;     // chunked delta rule
  int64_t layer_index = -1;    // for error messages
  void validate() const;       // ConfigError naming the field
};

// A NaN or Inf in a recurrent state during training (the forward checks the final state): names the
// layer and mixer. The trainer catches it to report the step.
struct NonFiniteStateError : ValueError {
  NonFiniteStateError(const std::string& msg, int64_t layer_index) : ValueError(msg), layer(layer_index) {}
  int64_t layer;
};

// Causal depthwise convolution without bias: y[t, c] = sum_j w[c, 0, j] x[t - K + 1 + j, c].
// x [B, T, C], weight [C, 1, K] (torch Conv1d groups=C layout), tail [B, K-1, C] = the inputs before
// x (undefined = zeros). When new_tail is given it receives the last K-1 inputs (for the next call).
// Composite of K shifted multiply-adds, so autograd covers it.
Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& tail = Tensor(), Tensor* new_tail = nullptr);

// Gated linear attention (no delta rule), chunk-parallel composite: per head
// S_t = Diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = S_t^T (scale q_t).
// q, k [B, T, H, dk]; v [B, T, H, dv]; g [B, T, H, dk] or [B, T, H] (log-gates <= 0);
// initial_state [B, H, dk, dv] or undefined. scale 0 = 1/sqrt(dk). Returns o [B, T, H, dv] and the
// final state. Pairwise gate differences exp(G_r - G_j) (never exp(-G)), masked before exp.
struct GLAResult {
  Tensor o, final_state;
};
GLAResult gated_linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                 const Tensor& initial_state = Tensor(), double scale = 0.0, int64_t chunk = 16);

// Short convolution module: parameter "weight" [C, 1, K].
class ShortConvolution : public Module {
 public:
  ShortConvolution(int64_t channels, int64_t kernel, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& tail = Tensor(), Tensor* new_tail = nullptr) const {
    return causal_conv1d(x, weight, tail, new_tail);
  }
  Tensor weight;
};

class DeltaAttention : public Module {
 public:
  // std: input projections; out_std: o_proj (scaled residual init).
  DeltaAttention(const DeltaAttentionConfig& cfg, Generator& gen, double std, double out_std);
  // x [B, T, C] -> [B, T, C]. With a cache the state and conv tails continue from it and are updated.
  // valid [B, T] (optional, 1 = token, 0 = left padding): padded positions get zero input, so they
  // leave a zero initial state and the conv tails unchanged (batched generation).
  // Under training (GradMode on and module in train mode) a non-finite final state throws
  // NonFiniteStateError naming the layer.
  Tensor forward(const Tensor& x, RecurrentCache* cache = nullptr, const Tensor& valid = Tensor()) const;
  // Continuous batching: row b of x [B, T, C] continues the sequence cached in rows[b] (a batch-1
  // cache of any length, empty ones included). The rows' states and conv tails are stacked into one
  // batch, stepped together, and each row's cache then holds its slice of the result.
  Tensor forward_rows(const Tensor& x, const std::vector<RecurrentCache*>& rows) const;

  DeltaAttentionConfig cfg;
  std::shared_ptr<Linear> q_proj, k_proj, v_proj;
  std::shared_ptr<ShortConvolution> q_conv1d, k_conv1d, v_conv1d;  // null when conv_size == 0
  Tensor A_log, dt_bias;                                           // undefined for DeltaNet
  std::shared_ptr<Linear> f_a_proj, f_b_proj;                      // KDA, GLA
  std::shared_ptr<Linear> a_proj;                                  // GDN
  std::shared_ptr<Linear> b_proj;                                  // null for GLA
  std::shared_ptr<Linear> g_a_proj, g_b_proj;
  std::shared_ptr<RMSNorm> o_norm;
  std::shared_ptr<Linear> o_proj;
  // The log-gate g ([B, T, H, dk] for KDA/GLA, [B, T, H] for GDN; undefined for DeltaNet) of x [B, T, C].
  Tensor gate(const Tensor& x) const;
};

}  // namespace lmlab
