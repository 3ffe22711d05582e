// Multi-head latent attention (DeepSeek-V2 Sec. 2.1, DeepSeek-V3; Kimi-Linear's full-attention layers).
// Keys and values come from one compressed latent per token, c_kv = RMSNorm(W_dkv x) (rank R =
// kv_lora_rank), expanded per head by kv_b_proj into k_nope [Dn] and v [Dv]; a decoupled rope key
// k_pe [Dr] is shared by all heads. Queries: q_proj, or the low-rank q_a_proj -> q_a_layernorm -> q_b_proj.
// Head scores use q = [q_nope, q_pe], k = [k_nope, k_pe], scale 1/sqrt(Dn + Dr). Dr = 0 or use_nope
// (Kimi: "mla_use_nope", the rope channels exist but are not rotated) gives NoPE attention.
// The cache (MLACache) keeps only [c_kv, k_pe]: (R + Dr) values per token, whatever the head count.
// Absorbed decoding: since q_nope . (W_uk c) = (W_uk^T q_nope) . c, the key part of kv_b_proj is folded
// into the query and the value part applied after attending, so decode attends over the latents
// directly as a one-kv-head attention of width R + Dr (values: the first R channels).
// Parameter names are HF DeepSeek-V3's: q_proj | q_a_proj q_a_layernorm q_b_proj, kv_a_proj_with_mqa
// ([R + Dr, C]), kv_a_layernorm, kv_b_proj ([H (Dn + Dv), R], per head Dn key rows then Dv value rows),
// o_proj. RoPE pairs channels as HF's rotate_half (DeepSeek's interleaved checkpoint layout needs
// rope.interleaved = true).
#pragma once
#include "lmlab/core/rng.h"
#include "lmlab/nn/cache.h"
#include "lmlab/nn/layers.h"
#include "lmlab/ops/rope.h"

namespace lmlab {

struct MLAConfig {
  int64_t hidden = 256;           // C
  int64_t n_heads = 4;            // H
  int64_t q_lora_rank = 0;        // 0 = full-rank q_proj
  int64_t kv_lora_rank = 64;      // R
  int64_t qk_nope_head_dim = 32;  // Dn
  int64_t qk_rope_head_dim = 0;   // Dr (0 = NoPE)
  int64_t v_head_dim = 32;        // Dv
  bool use_nope = false;          // keep the Dr channels but do not rotate them (Kimi mla_use_nope)
  double norm_eps = 1e-6;         // q_a_layernorm (and kv_a_layernorm unless kv_norm_eps is set)
  double kv_norm_eps = 0.0;       // kv_a_layernorm's eps; 0 = norm_eps
  RopeConfig rope;                // head_dim / rotary_dim are set to Dr by the layer
  // Auto: absorbed when decoding with a cache without gradients and T <= 16 (prefill expands the
  // latents, which is cheaper for many queries); Always / Never force a path (tests).
  enum class Absorb { Auto, Always, Never } absorb = Absorb::Auto;
  void validate() const;  // ConfigError naming the field
};

class MLAttention : public Module {
 public:
  MLAttention(const MLAConfig& cfg, Generator& gen, double std, double out_std);
  // x [B, T, C] -> [B, T, C]; pos_offset / positions / mask as SelfAttention::forward. With a cache the
  // new latents are appended and the queries attend over all of them.
  Tensor forward(const Tensor& x, int64_t pos_offset = 0, MLACache* cache = nullptr, const Tensor& positions = Tensor(),
                 const Tensor& mask = Tensor()) const;
  // Continuous batching (as SelfAttention::forward_rows): row b of x [B, T, C] continues the sequence
  // cached in rows[b], at positions [B, T]; projections batched, latent append and attention per row.
  Tensor forward_rows(const Tensor& x, const Tensor& positions, const std::vector<MLACache*>& rows) const;
  MLAConfig cfg;
  std::shared_ptr<Linear> q_proj;                  // q_lora_rank == 0
  std::shared_ptr<Linear> q_a_proj, q_b_proj;      // q_lora_rank > 0
  std::shared_ptr<RMSNorm> q_a_layernorm;
  std::shared_ptr<Linear> kv_a_proj_with_mqa, kv_b_proj, o_proj;
  std::shared_ptr<RMSNorm> kv_a_layernorm;
  // After the projections were given stored-precision weights (Linear::set_quantized, e.g. a bf16
  // checkpoint): the absorbed decode multiplies by kv_b_proj's per-head blocks as matrices, so an f32
  // copy of that one matrix ([H (Dn + Dv), R], small next to the layer) is kept for it; every other
  // product keeps running from the stored type. load_model / fuse_quantized_weights call this.
  void prepare_quantized();

 private:
  struct Projected {
    Tensor q_nope, q_pe;  // [B, H, T, Dn], [B, H, T, Dr] (undefined when Dr == 0); RoPE applied
    Tensor lat;           // [B, 1, T, R + Dr]: normalised latent + rope key, the cache rows
  };
  Projected project(const Tensor& x, int64_t pos_offset, const Tensor& positions) const;
  // Attention of the queries over latents [B, 1, S, R + Dr] -> [B, H, T, Dv]; `decoding` (a cache is
  // in use) lets Absorb::Auto take the absorbed path.
  Tensor attend(const Tensor& q_nope, const Tensor& q_pe, const Tensor& lat, const Tensor& mask, bool decoding) const;
  Tensor output(const Tensor& y) const;  // [B, H, T, Dv] -> o_proj -> [B, T, C]
  Tensor kv_b_dense_;  // f32 kv_b_proj matrix when kv_b_proj is quantized
};

}  // namespace lmlab
