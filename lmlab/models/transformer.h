// The Llama-style decoder (Touvron et al. 2023): token embedding, N blocks of
// [RMSNorm -> GQA self-attention with RoPE -> residual, RMSNorm -> SwiGLU MLP or sparse MoE -> residual],
// final RMSNorm, LM head (tied to the embedding or not). One class covers the HF architectures
// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (q/k/v biases), Qwen3ForCausalLM (q_norm /
// k_norm, explicit head_dim) and Qwen3MoeForCausalLM (MoE FFN on the layers the config selects).
// Parameter names are HF's ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.experts.3.up_proj.weight",
// "lm_head.weight"), and the configuration reads and writes HF config.json, so checkpoints are HF folders.
// Hybrid layer schedules (Kimi Linear, docs/KIMI.md): each layer's token mixer is one of full / sliding-window
// softmax attention, multi-head latent attention (nn/mla.h) or a linear-attention mixer (KDA, GDN, DeltaNet,
// GLA; nn/kda.h), chosen by `layer_pattern` or by KimiLinearForCausalLM's linear_attn_config; every mixer is
// registered as "self_attn" (Kimi-Linear's name) and keeps its own cache kind in the CacheSet.
#pragma once
#include <string>
#include <vector>

#include "lmlab/nn/attention.h"
#include "lmlab/nn/cache.h"
#include "lmlab/nn/kda.h"
#include "lmlab/nn/layers.h"
#include "lmlab/nn/mla.h"
#include "lmlab/nn/moe.h"

namespace lmlab {

// A layer's token mixer; letters of TransformerConfig::layer_pattern.
enum class MixerKind : char {
  Attention = 'A',  // full causal softmax attention (GQA, RoPE)
  Sliding = 'S',    // sliding-window softmax attention (window = sliding_window)
  MLA = 'M',        // multi-head latent attention
  KDA = 'K',        // Kimi Delta Attention
  GDN = 'G',        // Gated DeltaNet (scalar gate)
  DeltaNet = 'D',   // DeltaNet (no gate)
  GLA = 'L',        // gated linear attention without the delta rule
};
bool is_linear_mixer(MixerKind k);  // K, G, D, L: recurrent state instead of a KV cache

struct TransformerConfig {
  std::string architecture = "LlamaForCausalLM";
  int64_t vocab_size = 4096;
  int64_t hidden_size = 256;
  int64_t intermediate_size = 704;      // SwiGLU width (~8/3 * hidden, rounded to 64)
  int64_t num_hidden_layers = 4;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 4;      // < heads: grouped-query attention
  int64_t head_dim = 0;                 // 0 = hidden_size / num_attention_heads
  int64_t max_position_embeddings = 256;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;             // HF "rope_scaling" (null = none)
  bool tie_word_embeddings = true;
  bool attention_bias = false;          // q/k/v (and o_proj, except Qwen2) biases; implied by Qwen2ForCausalLM
  int64_t sliding_window = 0;           // 0 = none (Mistral uses 4096)
  double initializer_range = 0.02;
  int64_t bos_token_id = -1, eos_token_id = -1;

  // Qwen3-MoE (HF Qwen3MoeConfig names; from_json applies HF's defaults to absent fields). Layer i is
  // sparse when num_experts > 0, i is not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0;
  // dense layers use intermediate_size.
  int64_t num_experts = 0;              // 0 = every layer dense
  int64_t num_experts_per_tok = 0;      // top-k
  int64_t moe_intermediate_size = 0;    // each expert's SwiGLU width
  bool norm_topk_prob = false;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  double router_aux_loss_coef = 0.001;  // the trainer's balance-loss weight (HF's name)
  bool output_router_logits = false;    // HF: add the aux loss to the training loss
  // lmlab extensions for MoE experiments (DeepSeek-V3 names; written only when not the default, and
  // unknown to HF's Qwen3-MoE, which would route with softmax and no shared experts).
  std::string scoring_func = "softmax";  // "softmax" or "sigmoid" (aux-loss-free bias balancing)
  int64_t n_shared_experts = 0;          // always-on experts of width moe_intermediate_size each
  double routed_scaling_factor = 1.0;
  // DeepSeek-V3 / Kimi-Linear MoE placement: layers i < first_k_dense_replace are dense, and sparse
  // layers need i % moe_layer_freq == 0 (on top of decoder_sparse_step and mlp_only_layers above).
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  // Where Kimi-Linear's two official implementations disagree (docs/MODELS.md, "Kimi Linear"); lmlab
  // follows vLLM / DeepSeek-V3 by default. These lmlab keys select the released modeling_kimi.py's
  // reading and are written to config.json only when set.
  bool moe_router_bias_in_weights = false;  // true: e_score_correction_bias also enters the gate weights
  double kv_a_layernorm_eps = 0.0;          // MLA kv_a_layernorm eps; 0 = rms_norm_eps (modeling_kimi.py: 1e-6)

  // Layer schedule (lmlab extension, written to config.json when not all 'A'): one MixerKind letter
  // per layer (A S M K G D L), repeated cyclically over num_hidden_layers ("KKKM" = 3 KDA : 1 MLA;
  // a full-length string pins every layer). Empty = every layer 'A', or 'S' when sliding_window > 0
  // (the Mistral behaviour). KimiLinearForCausalLM configs set it from linear_attn_config.
  std::string layer_pattern;
  // Linear-attention mixers (Kimi "linear_attn_config": num_heads, head_dim, short_conv_kernel_size).
  int64_t linear_num_heads = 0;        // 0 = num_attention_heads
  int64_t linear_head_dim = 0;         // 0 = hidden_size / linear_num_heads (must divide)
  int64_t short_conv_kernel_size = 4;  // 0 = no short convolution
  // MLA (DeepSeek-V3 / Kimi names); used by 'M' layers.
  int64_t q_lora_rank = 0;             // 0 = full-rank q_proj (HF null)
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;        // 0 = NoPE
  int64_t v_head_dim = 0;
  bool mla_use_nope = false;           // Kimi: rope channels present but not rotated

  int64_t resolved_head_dim() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  bool is_moe_layer(int64_t i) const;
  MixerKind mixer_kind(int64_t i) const;  // layer i's mixer (validate() has checked the pattern)
  bool has_linear_mixers() const;
  int64_t resolved_linear_heads() const { return linear_num_heads > 0 ? linear_num_heads : num_attention_heads; }
  int64_t resolved_linear_head_dim() const {
    return linear_head_dim > 0 ? linear_head_dim : hidden_size / resolved_linear_heads();
  }
  DeltaAttentionConfig delta_config(int64_t layer) const;  // layer's linear mixer settings
  MLAConfig mla_config() const;
  bool has_qk_norm() const;             // Qwen3 / Qwen3-MoE
  MoEConfig moe_config() const;         // the sparse layers' MoE settings
  static const std::vector<std::string>& supported_architectures();

  // Throws ConfigError naming the field when a value is invalid.
  void validate() const;
  std::string to_json() const;                       // HF config.json text
  static TransformerConfig from_json(const std::string& text, const std::string& source = "config.json");
  static TransformerConfig from_file(const std::string& path);
};

class DecoderBlock : public Module {
 public:
  DecoderBlock(const TransformerConfig& cfg, Generator& gen, int64_t layer_index = 0);
  // cache: the set holding this block's layer cache (its kind follows the mixer), or null.
  // valid [B, T] (optional): 0 at left-padding positions, for recurrent mixers (derived from mask).
  Tensor forward(const Tensor& x, int64_t pos_offset, CacheSet* cache, const Tensor& positions = Tensor(),
                 const Tensor& mask = Tensor(), const Tensor& valid = Tensor()) const;
  // Continuous batching: row b of x continues the sequence of rows[b] (see Transformer::forward_rows).
  Tensor forward_rows(const Tensor& x, const Tensor& positions, const std::vector<CacheSet*>& rows) const;
  MixerKind mixer = MixerKind::Attention;
  int64_t layer_index = 0;
  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  // Exactly one mixer is set, registered as "self_attn".
  std::shared_ptr<SelfAttention> self_attn;        // A, S
  std::shared_ptr<MLAttention> mla;                // M
  std::shared_ptr<DeltaAttention> linear_attn;     // K, G, D, L
  // Exactly one of the two is set; either is registered as "mlp".
  std::shared_ptr<SwiGLUMLP> mlp;  // dense layers
  std::shared_ptr<SparseMoE> moe;  // sparse layers (cfg.is_moe_layer)

 private:
  Tensor ffn_residual(const Tensor& x, const Tensor& mixed) const;  // x + m, then + FFN(norm(x + m))
};

// The decoder trunk, registered under "model." (HF LlamaModel).
class TransformerTrunk : public Module {
 public:
  TransformerTrunk(const TransformerConfig& cfg, Generator& gen);
  std::shared_ptr<Embedding> embed_tokens;
  std::vector<std::shared_ptr<DecoderBlock>> layers;
  std::shared_ptr<RMSNorm> norm;
};

class Transformer : public Module {
 public:
  explicit Transformer(const TransformerConfig& cfg, uint64_t seed = 0);
  // ids [B, T] (i64/i32) -> final hidden states [B, T, C]. With a cache, positions continue from
  // the cached length and the new keys/values are appended.
  // positions [B, T] and an additive key mask [B, 1, T, S] are optional (batched generation with
  // left padding).
  Tensor forward_hidden(const Tensor& ids, CacheSet* cache = nullptr, const Tensor& positions = Tensor(),
                        const Tensor& mask = Tensor()) const;
  // ids [B, T] -> logits [B, T, V].
  Tensor forward(const Tensor& ids, CacheSet* cache = nullptr, const Tensor& positions = Tensor(),
                 const Tensor& mask = Tensor()) const;
  // Continuous batching over independent sequences: row b of ids [B, T] continues the sequence cached
  // in rows[b] (a batch-1 cache set of any length, e.g. an InferState's), at positions
  // rows[b]->length() + t. Norms, projections, MLP/MoE and head run as one batched product over the
  // rows; each row's attention and recurrent update run against its own cache, which grows by T.
  // Equal to feeding each row alone up to float rounding of the batched products. -> logits [B, T, V].
  Tensor forward_rows(const Tensor& ids, const std::vector<CacheSet*>& rows) const;
  Tensor logits(const Tensor& hidden) const;  // [..., C] -> [..., V]
  CacheSet new_cache() const { return CacheSet(cfg.num_hidden_layers); }
  const Tensor& lm_head_weight() const;
  // The sparse layers' MoE modules, in layer order (empty for dense models): aux-free bias updates.
  std::vector<std::shared_ptr<SparseMoE>> moe_layers() const;

  TransformerConfig cfg;
  std::shared_ptr<TransformerTrunk> model;
  std::shared_ptr<Linear> lm_head;  // null when tied
};

}  // namespace lmlab
