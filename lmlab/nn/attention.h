// Causal self-attention with grouped-query heads (GQA, Ainslie et al. 2023), RoPE and an optional
// sliding window, as in Llama / Mistral / Qwen2 / Qwen3. Parameter names follow HF: q_proj, k_proj,
// v_proj, o_proj (optional q/k/v biases for Qwen2, o_proj bias for Llama/Qwen3 attention_bias), and
// Qwen3's q_norm / k_norm (RMSNorm over head_dim, per head, on q and k before RoPE). With a cache,
// new keys/values are appended and the queries attend over everything cached (bottom-right aligned
// causal mask).
#pragma once
#include "lmlab/nn/cache.h"
#include "lmlab/nn/layers.h"
#include "lmlab/ops/rope.h"

namespace lmlab {

struct AttentionConfig {
  int64_t hidden = 256;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;
  int64_t head_dim = 64;
  bool qkv_bias = false;
  bool o_bias = false;
  bool qk_norm = false;        // Qwen3: RMSNorm(head_dim) on each q and k head before RoPE
  double qk_norm_eps = 1e-6;
  int64_t window = 0;  // 0 = full causal attention
  RopeConfig rope;
};

class SelfAttention : public Module {
 public:
  SelfAttention(const AttentionConfig& cfg, Generator& gen, double std, double out_std);
  // x [B, T, C] -> [B, T, C]. pos_offset: position of x's first token (the cache length when decoding).
  // positions [B, T] (optional) overrides pos_offset per row; mask (optional) is an additive
  // [B, 1, T, S] mask over the keys (left padding in batched generation).
  Tensor forward(const Tensor& x, int64_t pos_offset = 0, KVCache* cache = nullptr, const Tensor& positions = Tensor(),
                 const Tensor& mask = Tensor()) const;
  // Continuous batching: row b of x [B, T, C] continues the sequence cached in rows[b] (a batch-1
  // cache of any length), at positions [B, T]. The projections run over all rows at once; each row
  // appends to its own cache and attends over it.
  Tensor forward_rows(const Tensor& x, const Tensor& positions, const std::vector<KVCache*>& rows) const;
  AttentionConfig cfg;
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj;
  std::shared_ptr<RMSNorm> q_norm, k_norm;  // null unless cfg.qk_norm
  // After q/k/v were given quantized weights (Linear::set_quantized): stack them into one matrix
  // (when they share a type) so inference runs one product, and free the f32 fused buffer. Every
  // quantized matrix inference then uses (the stack or q/k/v, and o_proj) is laid out for decoding
  // (Linear::interleave_quantized).
  void fuse_quantized();

 private:
  struct Projected {
    Tensor q, k, v;  // [B, H, T, D], [B, Hkv, T, D], [B, Hkv, T, D]; RoPE applied
  };
  Projected project(const Tensor& x, int64_t pos_offset, const Tensor& positions) const;
  Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask) const;  // [B, H, T, D]
  Tensor output(const Tensor& y) const;  // y [B, H, T, D] -> o_proj -> [B, T, C]
  // q/k/v weights (and biases) are row slices of one buffer: training sees three HF-named
  // parameters, inference runs one GEMM/GEMV over the fused rows (same storage, never stale).
  Tensor qkv_weight_, qkv_bias_;
  std::shared_ptr<const QMatrix> qkv_q_;  // set by fuse_quantized
};

// SwiGLU feed-forward: down(silu(gate(x)) * up(x)) (Shazeer 2020; HF LlamaMLP).
class SwiGLUMLP : public Module {
 public:
  // The three projections are registered as gate_proj / up_proj / down_proj (Llama) unless other
  // names are given (Mixtral / Kimi experts: w1 / w3 / w2).
  SwiGLUMLP(int64_t hidden, int64_t intermediate, Generator& gen, double std, double out_std,
            const char* gate_name = "gate_proj", const char* up_name = "up_proj", const char* down_name = "down_proj");
  Tensor forward(const Tensor& x) const;
  std::shared_ptr<Linear> gate_proj, up_proj, down_proj;
  void fuse_quantized();  // as SelfAttention::fuse_quantized, for gate/up (and down_proj)

 private:
  Tensor gate_up_weight_;  // gate rows then up rows, shared with gate_proj / up_proj (see SelfAttention)
  std::shared_ptr<const QMatrix> gate_up_q_;  // set by fuse_quantized
  int64_t inter_;
};

}  // namespace lmlab
