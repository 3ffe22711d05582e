// Self-attention and SwiGLU MLP modules.
#include "lmlab/nn/attention.h"

#include "lmlab/ops/attention.h"
#include "lmlab/ops/swiglu.h"

namespace lmlab {

SelfAttention::SelfAttention(const AttentionConfig& c, Generator& gen, double std, double out_std) : cfg(c) {
  LMLAB_CHECK(c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, ConfigError,
              "[attention] num_attention_heads (", c.n_heads, ") must be a positive multiple of num_key_value_heads (",
              c.n_kv_heads, ")");
  q_proj = register_module("q_proj", std::make_shared<Linear>(c.hidden, c.n_heads * c.head_dim, c.qkv_bias, gen, std));
  k_proj = register_module("k_proj", std::make_shared<Linear>(c.hidden, c.n_kv_heads * c.head_dim, c.qkv_bias, gen, std));
  v_proj = register_module("v_proj", std::make_shared<Linear>(c.hidden, c.n_kv_heads * c.head_dim, c.qkv_bias, gen, std));
  o_proj = register_module("o_proj", std::make_shared<Linear>(c.n_heads * c.head_dim, c.hidden, false, gen, out_std));
}

Tensor SelfAttention::forward(const Tensor& x, int64_t pos_offset, KVCache* cache, const Tensor& positions,
                              const Tensor& mask) const {
  int64_t B = x.size(0), T = x.size(1), H = cfg.n_heads, Hkv = cfg.n_kv_heads, D = cfg.head_dim;
  Tensor q = q_proj->forward(x).view({B, T, H, D});    // [B, T, H, D]
  Tensor k = k_proj->forward(x).view({B, T, Hkv, D});  // [B, T, Hkv, D]
  Tensor v = v_proj->forward(x).view({B, T, Hkv, D});  // [B, T, Hkv, D]
  if (positions.defined()) {
    q = rope(q, cfg.rope, positions).transpose(1, 2);  // [B, H, T, D]
    k = rope(k, cfg.rope, positions).transpose(1, 2);  // [B, Hkv, T, D]
  } else {
    q = rope(q, cfg.rope, pos_offset).transpose(1, 2);  // [B, H, T, D]
    k = rope(k, cfg.rope, pos_offset).transpose(1, 2);  // [B, Hkv, T, D]
  }
  v = v.transpose(1, 2);                               // [B, Hkv, T, D]
  if (cache) std::tie(k, v) = cache->append(k, v);     // [B, Hkv, S, D], S = cached + T
  AttentionOptions opt;
  opt.causal = true;
  opt.window = cfg.window;
  opt.mask = mask;
  Tensor y = attention(q, k, v, opt);                  // [B, H, T, D]
  y = y.transpose(1, 2).reshape({B, T, H * D});        // [B, T, C]
  return o_proj->forward(y);
}

SwiGLUMLP::SwiGLUMLP(int64_t hidden, int64_t inter, Generator& gen, double std, double out_std) {
  gate_proj = register_module("gate_proj", std::make_shared<Linear>(hidden, inter, false, gen, std));
  up_proj = register_module("up_proj", std::make_shared<Linear>(hidden, inter, false, gen, std));
  down_proj = register_module("down_proj", std::make_shared<Linear>(inter, hidden, false, gen, out_std));
}

Tensor SwiGLUMLP::forward(const Tensor& x) const {
  return down_proj->forward(swiglu(gate_proj->forward(x), up_proj->forward(x)));
}

}  // namespace lmlab
