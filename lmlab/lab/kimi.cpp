// Cache-size and decode-speed measurements for hybrid (KDA + MLA) vs all-attention models.
#include "lmlab/lab/kimi.h"

#include <algorithm>
#include <chrono>

#include "lmlab/core/node.h"
#include "lmlab/ops/elementwise.h"

namespace lmlab {

namespace {
// Unit-variance uniform noise U(-sqrt 3, sqrt 3): the values do not change decode cost, and uniform
// draws are several times cheaper than normal ones for the ~10^8 values of a 64k fill.
Tensor noise(const Shape& shape, Generator& gen) { return mul(add(Tensor::rand(shape, gen), -0.5), 2 * 1.7320508); }
}  // namespace

TransformerConfig kimi_decode_config(const KimiDecodeShape& s, const std::string& pattern, int64_t max_context) {
  TransformerConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.intermediate;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.heads;  // full attention peer: as many kv heads as heads (MHA)
  c.max_position_embeddings = max_context;
  c.tie_word_embeddings = true;
  c.layer_pattern = pattern;
  c.linear_num_heads = s.heads;  // KDA heads = attention heads, dk = dv = hidden / heads
  c.short_conv_kernel_size = 4;
  int64_t D = s.hidden / s.heads;
  c.kv_lora_rank = s.kv_lora_rank;
  c.qk_nope_head_dim = D;
  c.qk_rope_head_dim = s.rope_dim;
  c.v_head_dim = D;
  c.mla_use_nope = true;  // Kimi: MLA layers are NoPE (the rope channels exist, unrotated)
  c.validate();
  return c;
}

void fill_cache_random(const Transformer& model, CacheSet& cache, int64_t length, uint64_t seed) {
  NoGrad ng;
  LMLAB_CHECK(length >= 0, ValueError, "[kimi] cache fill length must be >= 0, got ", length);
  const TransformerConfig& c = model.cfg;
  Generator gen(seed);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    MixerKind k = c.mixer_kind(i);
    if (k == MixerKind::MLA) {
      MLACache& m = cache.layer<MLACache>(i);
      // The latent part is RMS-normalised (kv_a_layernorm), so unit-variance rows are what a prefill leaves.
      if (length > 0) m.append(noise({1, 1, length, c.kv_lora_rank + c.qk_rope_head_dim}, gen));
    } else if (is_linear_mixer(k)) {
      RecurrentCache& r = cache.layer<RecurrentCache>(i);
      DeltaAttentionConfig d = c.delta_config(i);
      int64_t P = d.n_heads * d.head_dim;
      r.kind = linear_mixer_name(d.mixer);
      r.state = mul(noise({1, d.n_heads, d.head_dim, d.head_dim}, gen), 0.1);
      if (d.conv_size > 1) {
        r.conv_q = noise({1, d.conv_size - 1, P}, gen);
        r.conv_k = noise({1, d.conv_size - 1, P}, gen);
        r.conv_v = noise({1, d.conv_size - 1, P}, gen);
      }
      r.len = length;
    } else {
      KVCache& kv = cache.layer<KVCache>(i);
      int64_t D = c.resolved_head_dim();
      if (length > 0)
        kv.append(noise({1, c.num_key_value_heads, length, D}, gen), noise({1, c.num_key_value_heads, length, D}, gen));
    }
  }
}

size_t cache_bytes_of_kind(const Transformer& model, const CacheSet& cache, const std::string& kind) {
  LMLAB_CHECK(kind.empty() || kind == "kv" || kind == "mla" || kind == "recurrent", ValueError,
              "[kimi] cache kind must be kv, mla, recurrent or empty, got '", kind, "'");
  size_t total = 0;
  for (int64_t i = 0; i < model.cfg.num_hidden_layers && i < cache.size(); ++i) {
    const LayerCache* l = cache.peek(i);
    if (!l) continue;
    bool match = kind.empty() || (kind == "kv" && dynamic_cast<const KVCache*>(l)) ||
                 (kind == "mla" && dynamic_cast<const MLACache*>(l)) ||
                 (kind == "recurrent" && dynamic_cast<const RecurrentCache*>(l));
    if (match) total += l->bytes();
  }
  return total;
}

DecodeTiming time_decode(const Transformer& model, int64_t context, int steps, int warmup) {
  LMLAB_CHECK(steps > 0 && warmup >= 0 && context > steps + warmup, ValueError, "[kimi] decode timing needs context (",
              context, ") > steps (", steps, ") + warmup (", warmup, ")");
  NoGrad ng;
  CacheSet cache = model.new_cache();
  fill_cache_random(model, cache, context - steps - warmup);
  Tensor id = Tensor::from_vector(std::vector<int64_t>{1}, Shape{1, 1});
  std::vector<double> ms;
  for (int s = 0; s < warmup + steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor logits = model.forward(id, &cache);
    (void)logits.data<float>();  // the forward is eager; touching the result keeps it honest
    double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) ms.push_back(dt);
  }
  std::sort(ms.begin(), ms.end());
  DecodeTiming r;
  r.context = context;
  r.ms_per_token = ms.front();
  r.ms_median = ms[ms.size() / 2];
  r.cache_bytes = cache.bytes();
  return r;
}

}  // namespace lmlab
