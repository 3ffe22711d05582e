// Llama-style decoder: construction (scaled residual init, mixer and dense or MoE FFN per layer) and forward.
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
  a.window = 0;
  a.rope.head_dim = a.head_dim;
  a.rope.theta = c.rope_theta;
  a.rope.scaling = c.rope_scaling;
  return a;
}
// GPT-2's scaled init: residual-branch output projections get std / sqrt(2 * layers), so the
// residual stream's variance does not grow with depth.
double out_std(const TransformerConfig& c) { return c.initializer_range / std::sqrt(2.0 * double(c.num_hidden_layers)); }
// Recurrent mixers cannot read an attention mask: a [B, T] 0/1 tensor marking the new tokens that the
// additive key mask [B, 1, T, S] leaves visible to the last query (left padding is hidden from all).
Tensor valid_positions(const Tensor& mask, int64_t B, int64_t T) {
  LMLAB_CHECK(mask.dim() == 4 && mask.size(2) >= 1 && mask.size(3) >= T, ShapeError,
              "[transformer] mask must be [B, 1, T, S] with S >= T for recurrent layers, got ", shape_str(mask.shape()));
  Tensor m = mask.expand({B, mask.size(1), mask.size(2), mask.size(3)});
  int64_t S = m.size(3), Tq = m.size(2);
  std::vector<float> v(size_t(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      double a = m.at({b, 0, Tq - 1, S - T + t});
      v[size_t(b * T + t)] = std::isfinite(a) && a > -1e30 ? 1.0f : 0.0f;
    }
  return Tensor::from_vector(v, {B, T});
}
}  // namespace

DecoderBlock::DecoderBlock(const TransformerConfig& c, Generator& gen, int64_t layer)
    : mixer(c.mixer_kind(layer)), layer_index(layer) {
  input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
  if (mixer == MixerKind::Attention || mixer == MixerKind::Sliding) {
    AttentionConfig a = attn_config(c);
    if (mixer == MixerKind::Sliding) a.window = c.sliding_window;
    self_attn = register_module("self_attn", std::make_shared<SelfAttention>(a, gen, c.initializer_range, out_std(c)));
  } else if (mixer == MixerKind::MLA) {
    mla = register_module("self_attn", std::make_shared<MLAttention>(c.mla_config(), gen, c.initializer_range, out_std(c)));
  } else {
    linear_attn = register_module(
        "self_attn", std::make_shared<DeltaAttention>(c.delta_config(layer), gen, c.initializer_range, out_std(c)));
  }
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
  if (c.is_moe_layer(layer))
    // Kimi Linear's checkpoints name the sparse FFN "block_sparse_moe" (its dense layers stay "mlp").
    moe = register_module(c.architecture == "KimiLinearForCausalLM" ? "block_sparse_moe" : "mlp",
                          std::make_shared<SparseMoE>(c.moe_config(), gen, c.initializer_range, out_std(c), layer));
  else
    mlp = register_module("mlp", std::make_shared<SwiGLUMLP>(c.hidden_size, c.intermediate_size, gen,
                                                               c.initializer_range, out_std(c)));
}

Tensor DecoderBlock::forward(const Tensor& x, int64_t pos_offset, CacheSet* cache, const Tensor& positions,
                             const Tensor& mask, const Tensor& valid) const {
  Tensor a = input_layernorm->forward(x);  // [B, T, C]
  Tensor m;                                // [B, T, C]
  if (self_attn)
    m = self_attn->forward(a, pos_offset, cache ? &cache->layer<KVCache>(layer_index) : nullptr, positions, mask);
  else if (mla)
    m = mla->forward(a, pos_offset, cache ? &cache->layer<MLACache>(layer_index) : nullptr, positions, mask);
  else
    m = linear_attn->forward(a, cache ? &cache->layer<RecurrentCache>(layer_index) : nullptr, valid);
  return ffn_residual(x, m);
}

Tensor DecoderBlock::forward_rows(const Tensor& x, const Tensor& positions, const std::vector<CacheSet*>& rows) const {
  // Each row's layer cache (cloned first where a fork shares it).
  auto layer_caches = [&](auto* kind) {
    using C = std::remove_pointer_t<decltype(kind)>;
    std::vector<C*> out;
    for (CacheSet* r : rows) out.push_back(&r->layer<C>(layer_index));
    return out;
  };
  Tensor a = input_layernorm->forward(x);  // [B, T, C]
  Tensor m;                                // [B, T, C]
  if (self_attn)
    m = self_attn->forward_rows(a, positions, layer_caches(static_cast<KVCache*>(nullptr)));
  else if (mla)
    m = mla->forward_rows(a, positions, layer_caches(static_cast<MLACache*>(nullptr)));
  else
    m = linear_attn->forward_rows(a, layer_caches(static_cast<RecurrentCache*>(nullptr)));
  return ffn_residual(x, m);
}

Tensor DecoderBlock::ffn_residual(const Tensor& x, const Tensor& m) const {
  Tensor h = add(x, m);                                    // [B, T, C]
  Tensor f = post_attention_layernorm->forward(h);         // [B, T, C]
  return add(h, moe ? moe->forward(f) : mlp->forward(f));  // [B, T, C]
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
  Tensor valid = (mask.defined() && cfg.has_linear_mixers()) ? valid_positions(mask, ids.size(0), ids.size(1))
                                                               : Tensor();  // [B, T]
  for (const auto& layer : model->layers) x = layer->forward(x, pos, cache, positions, mask, valid);
  return model->norm->forward(x);
}

Tensor Transformer::forward_rows(const Tensor& ids, const std::vector<CacheSet*>& rows) const {
  LMLAB_CHECK(ids.dim() == 2 && ids.size(0) == int64_t(rows.size()), ShapeError, "[transformer] ids must be [B, T] with ",
              "one cache set per row (", rows.size(), "), got ", shape_str(ids.shape()));
  const int64_t B = ids.size(0), T = ids.size(1);
  Tensor positions = Tensor::empty({B, T}, DType::I64);  // [B, T]
  int64_t* pp = positions.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    LMLAB_CHECK(rows[size_t(b)] != nullptr, ValueError, "[transformer] row ", b, " has no cache set");
    int64_t pos = rows[size_t(b)]->length();
    LMLAB_CHECK(pos + T <= cfg.max_position_embeddings, ValueError, "[transformer] row ", b, ": sequence of ", pos + T,
                " tokens (", pos, " cached + ", T, " new) exceeds the context of ", cfg.max_position_embeddings,
                " (max_position_embeddings)");
    for (int64_t t = 0; t < T; ++t) pp[b * T + t] = pos + t;
  }
  Tensor x = model->embed_tokens->forward(ids);  // [B, T, C]
  for (const auto& layer : model->layers) x = layer->forward_rows(x, positions, rows);
  return logits(model->norm->forward(x));        // [B, T, V]
}

Tensor Transformer::logits(const Tensor& hidden) const {
  if (lm_head) return lm_head->forward(hidden);
  const Embedding& e = *model->embed_tokens;  // tied
  return e.quantized() ? qlinear(hidden, *e.qweight) : linear(hidden, e.weight);
}

Tensor Transformer::forward(const Tensor& ids, CacheSet* cache, const Tensor& positions, const Tensor& mask) const {
  return logits(forward_hidden(ids, cache, positions, mask));
}

}  // namespace lmlab
