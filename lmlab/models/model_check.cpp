// A config against the weights it comes with, before any model is built (see model_check.h).
#include "lmlab/models/model_check.h"

#include <limits>
#include <set>

namespace lmlab {

namespace {

constexpr int64_t kSat = std::numeric_limits<int64_t>::max();

int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? kSat : r;
}

int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? kSat : r;
}

template <class... R>
int64_t sat_mul(int64_t a, int64_t b, R... rest) {
  return sat_mul(sat_mul(a, b), rest...);
}

// Parameters + buffers of one decoder layer's mixer (nn/attention, nn/mla, nn/kda).
int64_t mixer_numel(const TransformerConfig& c, int64_t layer) {
  const int64_t C = c.hidden_size;
  const MixerKind k = c.mixer_kind(layer);
  if (k == MixerKind::Attention || k == MixerKind::Sliding) {
    const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
    const int64_t D = c.resolved_head_dim(), Q = sat_mul(c.num_attention_heads, D),
                  K = sat_mul(c.num_key_value_heads, D), QKV = sat_add(Q, sat_mul(2, K));
    int64_t n = sat_add(sat_mul(C, QKV), sat_mul(Q, C));  // q/k/v and o_proj
    if (c.attention_bias || qwen2) n = sat_add(n, QKV);
    if (c.attention_bias && !qwen2) n = sat_add(n, C);
    if (c.has_qk_norm()) n = sat_add(n, sat_mul(2, D));
    return n;
  }
  if (k == MixerKind::MLA) {
    const int64_t H = c.num_attention_heads, R = c.kv_lora_rank, Dq = sat_add(c.qk_nope_head_dim, c.qk_rope_head_dim);
    int64_t n = c.q_lora_rank > 0 ? sat_add(sat_add(sat_mul(C, c.q_lora_rank), c.q_lora_rank),
                                            sat_mul(c.q_lora_rank, H, Dq))
                                  : sat_mul(C, H, Dq);
    n = sat_add(n, sat_mul(C, sat_add(R, c.qk_rope_head_dim)));               // kv_a_proj_with_mqa
    n = sat_add(n, R);                                                        // kv_a_layernorm
    n = sat_add(n, sat_mul(R, H, sat_add(c.qk_nope_head_dim, c.v_head_dim)));  // kv_b_proj
    return sat_add(n, sat_mul(H, c.v_head_dim, C));                           // o_proj
  }
  const DeltaAttentionConfig d = c.delta_config(layer);
  const int64_t H = d.n_heads, D = d.head_dim, P = sat_mul(H, D);
  int64_t n = sat_mul(3, C, P);                                   // q/k/v
  if (d.conv_size > 0) n = sat_add(n, sat_mul(3, P, d.conv_size));  // short convolutions
  if (d.mixer == LinearMixer::KDA || d.mixer == LinearMixer::GLA)
    n = sat_add(n, sat_add(sat_add(H, sat_mul(C, D)), sat_add(sat_mul(D, P), P)));  // A_log, f_a, f_b, dt_bias
  else if (d.mixer == LinearMixer::GDN)
    n = sat_add(n, sat_add(sat_mul(C, H), sat_mul(2, H)));  // A_log, a_proj, dt_bias
  if (d.mixer != LinearMixer::GLA) n = sat_add(n, sat_mul(C, H));  // b_proj
  n = sat_add(n, sat_add(sat_mul(C, D), sat_mul(D, P)));           // g_a, g_b
  n = sat_add(n, D);                                               // o_norm
  return sat_add(n, sat_mul(P, C));                                // o_proj
}

// The FFN of layer `layer`: SwiGLU (gate, up, down) or the sparse MoE (router, experts, shared).
int64_t ffn_numel(const TransformerConfig& c, int64_t layer) {
  const int64_t C = c.hidden_size;
  if (!c.is_moe_layer(layer)) return sat_mul(3, C, c.intermediate_size);
  const MoEConfig m = c.moe_config();
  int64_t n = sat_mul(m.num_experts, C);                                  // router
  if (m.router == MoEConfig::Router::Sigmoid) n = sat_add(n, m.num_experts);  // e_score_correction_bias
  n = sat_add(n, sat_mul(m.num_experts, 3, C, m.expert_intermediate));
  if (m.num_shared_experts > 0) {
    const int64_t w = sat_mul(m.shared_intermediate > 0 ? m.shared_intermediate : m.expert_intermediate,
                              m.num_shared_experts);
    n = sat_add(n, sat_mul(3, C, w));
  }
  return n;
}

// "'<weights>' has shape [..]" helpers over the present tensors.
struct WeightView {
  const TensorShapes& w;
  std::string P, weights;  // "[model] 'config.json'" and the weight file's name

  const Shape* find(const std::string& name) const {
    auto it = w.find(name);
    return it == w.end() ? nullptr : &it->second;
  }
  // Dimension `dim` of tensor `name` (when present) must be `want`; `says` is the config's side
  // ("intermediate_size = 344").
  void dim(const std::string& name, size_t d, int64_t want, const std::string& says) const {
    const Shape* s = find(name);
    if (!s) return;
    LMLAB_CHECK(s->size() > d && (*s)[d] == want, ConfigError, P, ": ", says, " does not match the weights: '", name,
                "' in '", weights, "' has shape ", shape_str(*s), " (dimension ", d, " should be ", want, ")");
  }
};

}  // namespace

int64_t model_state_numel(const TransformerConfig& c) {
  const int64_t V = c.vocab_size, C = c.hidden_size;
  int64_t n = sat_add(sat_mul(V, C), C);  // embed_tokens, norm
  if (!c.tie_word_embeddings) n = sat_add(n, sat_mul(V, C));
  for (int64_t i = 0; i < c.num_hidden_layers && n < kSat; ++i)
    n = sat_add(n, sat_add(sat_mul(2, C), sat_add(mixer_numel(c, i), ffn_numel(c, i))));
  return n;
}

TensorShapes tensor_shapes(const SafetensorsShards& weights) {
  TensorShapes out;
  for (const auto& n : weights.names()) out.emplace(n, weights.info(n).shape);
  return out;
}

int64_t value_bound(int64_t have) { return sat_add(sat_mul(2, have), int64_t(1) << 20); }

int64_t total_numel(const TensorShapes& shapes) {
  int64_t n = 0;
  for (const auto& [name, s] : shapes) {
    (void)name;
    int64_t e = 1;
    for (int64_t d : s) e = sat_mul(e, std::max<int64_t>(d, 0));
    n = sat_add(n, e);
  }
  return n;
}

std::vector<int64_t> layer_indices(const TensorShapes& shapes, const std::string& prefix) {
  std::set<int64_t> found;
  for (auto it = shapes.lower_bound(prefix); it != shapes.end() && it->first.starts_with(prefix); ++it) {
    const std::string& n = it->first;
    size_t a = prefix.size(), b = a;
    while (b < n.size() && n[b] >= '0' && n[b] <= '9') ++b;
    // 1..9 digits, no leading zero, then '.'
    if (b == a || b - a > 9 || (n[a] == '0' && b - a > 1) || b == n.size() || n[b] != '.') continue;
    found.insert(std::stoll(n.substr(a, b - a)));
  }
  return {found.begin(), found.end()};
}

void check_layer_count(int64_t layers, const std::vector<int64_t>& idx, const std::string& prefix,
                       const std::string& field, const std::string& where, const std::string& weights) {
  const std::string P = str_cat("[model] '", where, "'");
  LMLAB_CHECK(!idx.empty() || layers == 0, ConfigError, P, ": ", field, " = ", layers, ", but '", weights,
              "' holds no layers (no tensor named ", prefix, "N.*)");
  const int64_t n = int64_t(idx.size());
  const bool contiguous = idx.empty() || idx.back() == n - 1;
  LMLAB_CHECK(layers == n && contiguous, ConfigError, P, ": ", field, " = ", layers, ", but '", weights, "' holds ", n,
              " layer", n == 1 ? "" : "s", " (", prefix, idx.front(), " .. ", prefix, idx.back(),
              contiguous ? "" : ", with gaps", ")");
}

TransformerConfig config_for_weights(const std::string& config_text, const std::string& config_source,
                                     const TensorShapes& weights, const std::string& weights_source) {
  TransformerConfig cfg = parse_config_json(config_text, config_source);
  // The sizes that bound everything else, compared as read (before validate() loops over layers).
  check_layer_count(cfg.num_hidden_layers, layer_indices(weights, "model.layers."), "model.layers.",
                    "num_hidden_layers", config_source, weights_source);
  WeightView v{weights, str_cat("[model] '", config_source, "'"), weights_source};
  v.dim("model.embed_tokens.weight", 0, cfg.vocab_size, str_cat("vocab_size = ", cfg.vocab_size));
  v.dim("model.embed_tokens.weight", 1, cfg.hidden_size, str_cat("hidden_size = ", cfg.hidden_size));
  cfg.validate();
  check_config_against_weights(cfg, weights, config_source, weights_source);
  return cfg;
}

void check_config_against_weights(const TransformerConfig& c, const TensorShapes& weights,
                                  const std::string& config_source, const std::string& weights_source) {
  check_layer_count(c.num_hidden_layers, layer_indices(weights, "model.layers."), "model.layers.",
                    "num_hidden_layers", config_source, weights_source);
  WeightView v{weights, str_cat("[model] '", config_source, "'"), weights_source};
  const int64_t V = c.vocab_size, C = c.hidden_size;
  const std::string sv = str_cat("vocab_size = ", V), sc = str_cat("hidden_size = ", C);
  v.dim("model.embed_tokens.weight", 0, V, sv);
  v.dim("model.embed_tokens.weight", 1, C, sc);
  if (!c.tie_word_embeddings) {
    v.dim("lm_head.weight", 0, V, sv);
    v.dim("lm_head.weight", 1, C, sc);
  }
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = str_cat("model.layers.", i, ".");
    const std::string a = p + "self_attn.";
    const MixerKind k = c.mixer_kind(i);
    if (k == MixerKind::Attention || k == MixerKind::Sliding) {
      const int64_t D = c.resolved_head_dim();
      v.dim(a + "q_proj.weight", 0, c.num_attention_heads * D,
            str_cat("num_attention_heads x head_dim = ", c.num_attention_heads, " x ", D));
      v.dim(a + "q_proj.weight", 1, C, sc);
      v.dim(a + "k_proj.weight", 0, c.num_key_value_heads * D,
            str_cat("num_key_value_heads x head_dim = ", c.num_key_value_heads, " x ", D));
      v.dim(a + "v_proj.weight", 0, c.num_key_value_heads * D,
            str_cat("num_key_value_heads x head_dim = ", c.num_key_value_heads, " x ", D));
      v.dim(a + "o_proj.weight", 0, C, sc);
    } else if (k == MixerKind::MLA) {
      const int64_t H = c.num_attention_heads;
      v.dim(a + "kv_a_proj_with_mqa.weight", 0, c.kv_lora_rank + c.qk_rope_head_dim,
            str_cat("kv_lora_rank + qk_rope_head_dim = ", c.kv_lora_rank, " + ", c.qk_rope_head_dim));
      v.dim(a + "kv_a_proj_with_mqa.weight", 1, C, sc);
      v.dim(a + "kv_b_proj.weight", 0, H * (c.qk_nope_head_dim + c.v_head_dim),
            str_cat("num_attention_heads x (qk_nope_head_dim + v_head_dim) = ", H, " x (", c.qk_nope_head_dim, " + ",
                    c.v_head_dim, ")"));
      v.dim(a + "kv_b_proj.weight", 1, c.kv_lora_rank, str_cat("kv_lora_rank = ", c.kv_lora_rank));
      v.dim(a + "q_a_proj.weight", 0, c.q_lora_rank, str_cat("q_lora_rank = ", c.q_lora_rank));
      v.dim(a + "o_proj.weight", 1, H * c.v_head_dim,
            str_cat("num_attention_heads x v_head_dim = ", H, " x ", c.v_head_dim));
    } else {
      const DeltaAttentionConfig d = c.delta_config(i);
      const std::string says = str_cat("linear_attn_config.num_heads x head_dim = ", d.n_heads, " x ", d.head_dim);
      v.dim(a + "q_proj.weight", 0, d.n_heads * d.head_dim, says);
      v.dim(a + "q_proj.weight", 1, C, sc);
      v.dim(a + "o_proj.weight", 1, d.n_heads * d.head_dim, says);
      if (d.conv_size > 0)
        v.dim(a + "q_conv1d.weight", 2, d.conv_size,
              str_cat("linear_attn_config.short_conv_kernel_size = ", d.conv_size));
    }
    if (c.is_moe_layer(i)) {
      const MoEConfig m = c.moe_config();
      const std::string f = p + (c.architecture == "KimiLinearForCausalLM" ? "block_sparse_moe." : "mlp.");
      const std::string sm = str_cat("moe_intermediate_size = ", m.expert_intermediate);
      v.dim(f + "gate.weight", 0, m.num_experts, str_cat("num_experts = ", m.num_experts));
      v.dim(f + "gate.weight", 1, C, sc);
      v.dim(f + (m.mixtral_expert_names ? "experts.0.w1.weight" : "experts.0.gate_proj.weight"), 0,
            m.expert_intermediate, sm);
      v.dim(f + (m.mixtral_expert_names ? "experts.0.w2.weight" : "experts.0.down_proj.weight"), 1,
            m.expert_intermediate, sm);
      // an expert past the configured count
      LMLAB_CHECK(!v.find(str_cat(f, "experts.", m.num_experts, m.mixtral_expert_names ? ".w1.weight" : ".gate_proj.weight")),
                  ConfigError, v.P, ": num_experts = ", m.num_experts, ", but '", weights_source, "' holds '", f,
                  "experts.", m.num_experts, "' (experts beyond that count)");
    } else {
      const std::string si = str_cat("intermediate_size = ", c.intermediate_size);
      v.dim(p + "mlp.gate_proj.weight", 0, c.intermediate_size, si);
      v.dim(p + "mlp.gate_proj.weight", 1, C, sc);
      v.dim(p + "mlp.down_proj.weight", 1, c.intermediate_size, si);
    }
  }
  // Whatever the per-tensor checks above did not reach: every tensor of the model is loaded from
  // the weights, so it cannot need many more values than they hold. The bound leaves room for a
  // few missing tensors, which load_state_dict then names exactly.
  const int64_t need = model_state_numel(c), have = total_numel(weights);
  LMLAB_CHECK(need <= value_bound(have), ConfigError, v.P, " describes a model of ",
              need == kSat ? std::string("more than 9.2e18") : std::to_string(need), " values (vocab_size ", V,
              ", hidden_size ", C, ", num_hidden_layers ", c.num_hidden_layers, ", intermediate_size ",
              c.intermediate_size, c.num_experts > 0 ? str_cat(", num_experts ", c.num_experts, ", moe_intermediate_size ",
                                                               c.moe_intermediate_size)
                                                     : std::string(),
              "), but '", weights_source, "' holds only ", have);
}

}  // namespace lmlab
