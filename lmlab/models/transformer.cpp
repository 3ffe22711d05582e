// Llama-style decoder: construction (scaled residual init, dense or MoE FFN per layer) and forward.
#include "lmlab/models/transformer.h"

#include <cmath>

#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/matmul.h"

namespace lmlab {

namespace {
AttentionConfig attn_config(const TransformerConfig& c) {
  AttentionConfig a;
  a.hidden = c.hidden_size;
  a.n_heads = c.num_attention_heads;
  a.n_kv_heads = c.num_key_value_heads;
  a.head_dim = c.resolved_head_dim();
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  a.qkv_bias = c.attention_bias || qwen2;
  a.o_bias = c.attention_bias && !qwen2;  // HF Qwen2Attention: o_proj never has a bias
  a.qk_norm = c.has_qk_norm();
  a.qk_norm_eps = c.rms_norm_eps;
  a.window = c.sliding_window;
  a.rope.head_dim = a.head_dim;
  a.rope.theta = c.rope_theta;
  a.rope.scaling = c.rope_scaling;
  return a;
}
// GPT-2's scaled init: residual-branch output projections get std / sqrt(2 * layers), so the
// residual stream's variance does not grow with depth.
double out_std(const TransformerConfig& c) { return c.initializer_range / std::sqrt(2.0 * double(c.num_hidden_layers)); }
}  // namespace

DecoderBlock::DecoderBlock(const TransformerConfig& c, Generator& gen, int64_t layer) {
  input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
  self_attn = register_module("self_attn",
                              std::make_shared<SelfAttention>(attn_config(c), gen, c.initializer_range, out_std(c)));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
  if (c.is_moe_layer(layer))
    moe = register_module("mlp", std::make_shared<SparseMoE>(c.moe_config(), gen, c.initializer_range, out_std(c), layer));
  else
    mlp = register_module("mlp", std::make_shared<SwiGLUMLP>(c.hidden_size, c.intermediate_size, gen,
                                                               c.initializer_range, out_std(c)));
}

Tensor DecoderBlock::forward(const Tensor& x, int64_t pos_offset, KVCache* cache, const Tensor& positions,
                             const Tensor& mask) const {
  Tensor h = add(x, self_attn->forward(input_layernorm->forward(x), pos_offset, cache, positions, mask));  // [B, T, C]
  Tensor f = post_attention_layernorm->forward(h);                                       // [B, T, C]
  return add(h, moe ? moe->forward(f) : mlp->forward(f));                                // [B, T, C]
}

TransformerTrunk::TransformerTrunk(const TransformerConfig& c, Generator& gen) {
  embed_tokens = register_module("embed_tokens",
                                 std::make_shared<Embedding>(c.vocab_size, c.hidden_size, gen, c.initializer_range));
  for (int64_t i = 0; i < c.num_hidden_layers; ++i)
    layers.push_back(register_module("layers." + std::to_string(i), std::make_shared<DecoderBlock>(c, gen, i)));
  norm = register_module("norm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
}

Transformer::Transformer(const TransformerConfig& c, uint64_t seed) : cfg(c) {
  cfg.validate();
  Generator gen(seed);
  model = register_module("model", std::make_shared<TransformerTrunk>(cfg, gen));
  if (!cfg.tie_word_embeddings)
    lm_head = register_module("lm_head", std::make_shared<Linear>(cfg.hidden_size, cfg.vocab_size, false, gen,
                                                                  cfg.initializer_range));
}

const Tensor& Transformer::lm_head_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

std::vector<std::shared_ptr<SparseMoE>> Transformer::moe_layers() const {
  std::vector<std::shared_ptr<SparseMoE>> out;
  for (const auto& l : model->layers)
    if (l->moe) out.push_back(l->moe);
  return out;
}

Tensor Transformer::forward_hidden(const Tensor& ids, CacheSet* cache, const Tensor& positions,
                                  const Tensor& mask) const {
  LMLAB_CHECK(ids.dim() == 2, ShapeError, "[transformer] ids must be [B, T], got ", shape_str(ids.shape()));
  int64_t pos = cache ? cache->length() : 0;
  LMLAB_CHECK(pos + ids.size(1) <= cfg.max_position_embeddings, ValueError, "[transformer] sequence of ",
              pos + ids.size(1), " tokens (", pos, " cached + ", ids.size(1), " new) exceeds the context of ",
              cfg.max_position_embeddings, " (max_position_embeddings)");
  Tensor x = model->embed_tokens->forward(ids);  // [B, T, C]
  for (size_t i = 0; i < model->layers.size(); ++i) {
    KVCache* kv = cache ? &cache->layer<KVCache>(int64_t(i)) : nullptr;
    x = model->layers[i]->forward(x, pos, kv, positions, mask);
  }
  return model->norm->forward(x);
}

Tensor Transformer::logits(const Tensor& hidden) const {
  return lm_head ? lm_head->forward(hidden) : linear(hidden, model->embed_tokens->weight);
}

Tensor Transformer::forward(const Tensor& ids, CacheSet* cache, const Tensor& positions, const Tensor& mask) const {
  return logits(forward_hidden(ids, cache, positions, mask));
}

}  // namespace lmlab
