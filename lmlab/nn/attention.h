// Causal self-attention with grouped-query heads (GQA, Ainslie et al. 2023), RoPE and an optional
// sliding window, as in Llama / Mistral / Qwen2. Parameter names follow HF: q_proj, k_proj,
// v_proj, o_proj (optional q/k/v biases for Qwen2). With a cache, new keys/values are appended and
// the queries attend over everything cached (bottom-right aligned causal mask).
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
  AttentionConfig cfg;
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj;

 private:
  // q/k/v weights (and biases) are row slices of one buffer: training sees three HF-named
  // parameters, inference runs one GEMM/GEMV over the fused rows (same storage, never stale).
  Tensor qkv_weight_, qkv_bias_;
};

// SwiGLU feed-forward: down(silu(gate(x)) * up(x)) (Shazeer 2020; HF LlamaMLP).
class SwiGLUMLP : public Module {
 public:
  SwiGLUMLP(int64_t hidden, int64_t intermediate, Generator& gen, double std, double out_std);
  Tensor forward(const Tensor& x) const;
  std::shared_ptr<Linear> gate_proj, up_proj, down_proj;

 private:
  Tensor gate_up_weight_;  // gate rows then up rows, shared with gate_proj / up_proj (see SelfAttention)
  int64_t inter_;
};

}  // namespace lmlab
