// The Llama-style decoder (Touvron et al. 2023): token embedding, N blocks of
// [RMSNorm -> GQA self-attention with RoPE -> residual, RMSNorm -> SwiGLU MLP -> residual],
// final RMSNorm, LM head (tied to the embedding or not). Parameter names are Hugging Face
// LlamaForCausalLM's ("model.layers.0.self_attn.q_proj.weight", "lm_head.weight"), and the
// configuration reads and writes HF config.json, so checkpoints are HF folders.
#pragma once
#include <string>

#include "lmlab/nn/attention.h"
#include "lmlab/nn/cache.h"
#include "lmlab/nn/layers.h"

namespace lmlab {

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
  bool attention_bias = false;          // q/k/v biases (Qwen2)
  int64_t sliding_window = 0;           // 0 = none (Mistral uses 4096)
  double initializer_range = 0.02;
  int64_t bos_token_id = -1, eos_token_id = -1;

  int64_t resolved_head_dim() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  // Throws ConfigError naming the field when a value is invalid.
  void validate() const;
  std::string to_json() const;                       // HF config.json text
  static TransformerConfig from_json(const std::string& text, const std::string& source = "config.json");
  static TransformerConfig from_file(const std::string& path);
};

class DecoderBlock : public Module {
 public:
  DecoderBlock(const TransformerConfig& cfg, Generator& gen);
  Tensor forward(const Tensor& x, int64_t pos_offset, KVCache* cache, const Tensor& positions = Tensor(),
                 const Tensor& mask = Tensor()) const;
  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<SelfAttention> self_attn;
  std::shared_ptr<SwiGLUMLP> mlp;
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
  Tensor logits(const Tensor& hidden) const;  // [..., C] -> [..., V]
  CacheSet new_cache() const { return CacheSet(cfg.num_hidden_layers); }
  const Tensor& lm_head_weight() const;

  TransformerConfig cfg;
  std::shared_ptr<TransformerTrunk> model;
  std::shared_ptr<Linear> lm_head;  // null when tied
};

}  // namespace lmlab
