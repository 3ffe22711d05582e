// Multi-head latent attention: expanded (training / prefill) and absorbed (decode) paths.
#include "lmlab/nn/mla.h"

#include <cmath>

#include "lmlab/core/node.h"
#include "lmlab/nn/rows.h"
#include "lmlab/ops/attention.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/join.h"
#include "lmlab/ops/matmul.h"

namespace lmlab {

void MLAConfig::validate() const {
  auto pos = [](int64_t v, const char* f) {
    LMLAB_CHECK(v > 0, ConfigError, "[mla] ", f, " must be positive, got ", v);
  };
  pos(hidden, "hidden_size");
  pos(n_heads, "num_attention_heads");
  pos(kv_lora_rank, "kv_lora_rank");
  pos(v_head_dim, "v_head_dim");
  LMLAB_CHECK(q_lora_rank >= 0, ConfigError, "[mla] q_lora_rank must be >= 0 (0 = none), got ", q_lora_rank);
  LMLAB_CHECK(qk_nope_head_dim >= 0 && qk_rope_head_dim >= 0 && qk_nope_head_dim + qk_rope_head_dim > 0, ConfigError,
              "[mla] qk_nope_head_dim (", qk_nope_head_dim, ") and qk_rope_head_dim (", qk_rope_head_dim,
              ") must be >= 0 with a positive sum");
  LMLAB_CHECK(qk_rope_head_dim % 2 == 0, ConfigError, "[mla] qk_rope_head_dim must be even for rotary embeddings, got ",
              qk_rope_head_dim);
  LMLAB_CHECK(norm_eps > 0, ConfigError, "[mla] norm eps must be positive, got ", norm_eps);
  LMLAB_CHECK(kv_norm_eps >= 0, ConfigError, "[mla] kv_a_layernorm_eps must be >= 0 (0 = rms_norm_eps), got ",
              kv_norm_eps);
}

MLAttention::MLAttention(const MLAConfig& c, Generator& gen, double std, double out_std) : cfg(c) {
  c.validate();
  cfg.rope.head_dim = c.qk_rope_head_dim;
  cfg.rope.rotary_dim = 0;
  int64_t C = c.hidden, H = c.n_heads, Dq = c.qk_nope_head_dim + c.qk_rope_head_dim, R = c.kv_lora_rank;
  if (c.q_lora_rank > 0) {
    q_a_proj = register_module("q_a_proj", std::make_shared<Linear>(C, c.q_lora_rank, false, gen, std));
    q_a_layernorm = register_module("q_a_layernorm", std::make_shared<RMSNorm>(c.q_lora_rank, c.norm_eps));
    q_b_proj = register_module("q_b_proj", std::make_shared<Linear>(c.q_lora_rank, H * Dq, false, gen, std));
  } else {
    q_proj = register_module("q_proj", std::make_shared<Linear>(C, H * Dq, false, gen, std));
  }
  kv_a_proj_with_mqa = register_module(
      "kv_a_proj_with_mqa", std::make_shared<Linear>(C, R + c.qk_rope_head_dim, false, gen, std));
  kv_a_layernorm = register_module("kv_a_layernorm",
                                   std::make_shared<RMSNorm>(R, c.kv_norm_eps > 0 ? c.kv_norm_eps : c.norm_eps));
  kv_b_proj = register_module(
      "kv_b_proj", std::make_shared<Linear>(R, H * (c.qk_nope_head_dim + c.v_head_dim), false, gen, std));
  o_proj = register_module("o_proj", std::make_shared<Linear>(H * c.v_head_dim, C, false, gen, out_std));
}

MLAttention::Projected MLAttention::project(const Tensor& x, int64_t pos_offset, const Tensor& positions) const {
  LMLAB_CHECK(x.dim() == 3 && x.size(2) == cfg.hidden, ShapeError, "[mla] input must be [B, T, ", cfg.hidden,
              "], got ", shape_str(x.shape()));
  int64_t B = x.size(0), T = x.size(1), H = cfg.n_heads, Dn = cfg.qk_nope_head_dim, Dr = cfg.qk_rope_head_dim,
          R = cfg.kv_lora_rank;
  bool rotate = Dr > 0 && !cfg.use_nope;
  auto apply_rope = [&](const Tensor& t) {  // [B, T, h, Dr]
    if (!rotate) return t;
    return positions.defined() ? rope(t.contiguous(), cfg.rope, positions) : rope(t.contiguous(), cfg.rope, pos_offset);
  };
  Projected p;
  Tensor q = q_proj ? q_proj->forward(x) : q_b_proj->forward(q_a_layernorm->forward(q_a_proj->forward(x)));
  q = q.view({B, T, H, Dn + Dr});                                         // [B, T, H, Dn + Dr]
  p.q_nope = q.narrow(3, 0, Dn).transpose(1, 2);                          // [B, H, T, Dn]
  if (Dr > 0) p.q_pe = apply_rope(q.narrow(3, Dn, Dr)).transpose(1, 2);   // [B, H, T, Dr]
  Tensor ckv = kv_a_proj_with_mqa->forward(x);                            // [B, T, R + Dr]
  Tensor lat = kv_a_layernorm->forward(ckv.narrow(2, 0, R));              // [B, T, R]
  if (Dr > 0) {
    Tensor k_pe = apply_rope(ckv.narrow(2, R, Dr).reshape({B, T, 1, Dr})).reshape({B, T, Dr});  // [B, T, Dr]
    lat = concat({lat, k_pe}, 2);                                         // [B, T, R + Dr]
  }
  p.lat = lat.unsqueeze(1);                                               // [B, 1, T, R + Dr]
  return p;
}

Tensor MLAttention::attend(const Tensor& q_nope, const Tensor& q_pe, const Tensor& lat, const Tensor& mask,
                           bool decoding) const {
  int64_t B = q_nope.size(0), T = q_nope.size(2), H = cfg.n_heads, Dn = cfg.qk_nope_head_dim,
          Dr = cfg.qk_rope_head_dim, Dv = cfg.v_head_dim, R = cfg.kv_lora_rank, S = lat.size(2);
  AttentionOptions opt;
  opt.causal = true;
  opt.scale = 1.0 / std::sqrt(double(Dn + Dr));
  opt.mask = mask;
  bool absorb = cfg.absorb == MLAConfig::Absorb::Always ||
                (cfg.absorb == MLAConfig::Absorb::Auto && decoding && !GradMode::enabled() && T <= 16);
  const Tensor& Wkv = kv_b_proj->quantized() ? kv_b_dense_ : kv_b_proj->weight;  // [H (Dn + Dv), R]
  LMLAB_CHECK(Wkv.defined(), ValueError,
              "[mla] kv_b_proj is quantized but prepare_quantized() was not called (load_model and "
              "fuse_quantized_weights call it)");
  if (absorb) {
    Tensor W = Wkv.view({H, Dn + Dv, R});
    Tensor q_lat = Dn > 0 ? matmul(q_nope, W.narrow(1, 0, Dn)) : Tensor::zeros({B, H, T, R}, lat.dtype());  // [B, H, T, R]
    Tensor qa = Dr > 0 ? concat({q_lat, q_pe}, 3) : q_lat;               // [B, H, T, R + Dr]
    Tensor o_lat = attention(qa, lat, lat.narrow(3, 0, R), opt);         // [B, H, T, R]: one shared kv head
    return matmul(o_lat, W.narrow(1, Dn, Dv).transpose(1, 2));           // [B, H, T, Dv]
  }
  Tensor c_all = lat.squeeze(1).narrow(2, 0, R);                                      // [B, S, R]
  Tensor kv = kv_b_proj->forward(c_all).view({B, S, H, Dn + Dv}).transpose(1, 2);    // [B, H, S, Dn + Dv]
  Tensor k = kv.narrow(3, 0, Dn), v = kv.narrow(3, Dn, Dv);                           // [B, H, S, Dn], [B, H, S, Dv]
  Tensor qh = q_nope;
  if (Dr > 0) {
    Tensor k_pe = lat.narrow(3, R, Dr).expand({B, H, S, Dr});                         // [B, H, S, Dr]
    k = Dn > 0 ? concat({k, k_pe}, 3) : k_pe;                                         // [B, H, S, Dn + Dr]
    qh = Dn > 0 ? concat({q_nope, q_pe}, 3) : q_pe;                                   // [B, H, T, Dn + Dr]
  }
  return attention(qh, k, v, opt);                                                    // [B, H, T, Dv]
}

Tensor MLAttention::output(const Tensor& y) const {
  int64_t B = y.size(0), T = y.size(2);
  return o_proj->forward(y.transpose(1, 2).reshape({B, T, cfg.n_heads * cfg.v_head_dim}));  // [B, T, C]
}

Tensor MLAttention::forward(const Tensor& x, int64_t pos_offset, MLACache* cache, const Tensor& positions,
                            const Tensor& mask) const {
  Projected p = project(x, pos_offset, positions);
  Tensor lat = cache ? cache->append(p.lat) : p.lat;  // [B, 1, S, R + Dr], S = cached + T
  return output(attend(p.q_nope, p.q_pe, lat, mask, cache != nullptr));
}

Tensor MLAttention::forward_rows(const Tensor& x, const Tensor& positions, const std::vector<MLACache*>& rows) const {
  LMLAB_CHECK(int64_t(rows.size()) == x.size(0), ShapeError, "[mla] ", rows.size(), " row caches for a batch of ",
              x.size(0));
  Projected p = project(x, 0, positions);
  return output(concat_rows(x.size(0), [&](int64_t b) {
    Tensor lat = rows[size_t(b)]->append(p.lat.narrow(0, b, 1));  // [1, 1, S_b, R + Dr]
    Tensor q_pe = p.q_pe.defined() ? p.q_pe.narrow(0, b, 1) : Tensor();
    return attend(p.q_nope.narrow(0, b, 1), q_pe, lat, Tensor(), true);  // [1, H, T, Dv]
  }));  // [B, T, C]
}

void MLAttention::prepare_quantized() {
  kv_b_dense_ = kv_b_proj->quantized() ? kv_b_proj->qweight->dequantize() : Tensor();
}

}  // namespace lmlab
