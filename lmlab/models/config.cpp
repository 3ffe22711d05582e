// TransformerConfig <-> Hugging Face config.json (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM, Qwen3MoeForCausalLM, KimiLinearForCausalLM fields), with validation that names the
// offending field. Layer schedules: "layer_pattern" (lmlab) or Kimi's "linear_attn_config" (docs/KIMI.md).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmlab/models/model_check.h"
#include "lmlab/models/transformer.h"
#include "lmlab/ops/rope.h"

namespace lmlab {

namespace {
const char* kLlama = "LlamaForCausalLM";
const char* kMistral = "MistralForCausalLM";
const char* kQwen2 = "Qwen2ForCausalLM";
const char* kQwen3 = "Qwen3ForCausalLM";
const char* kQwen3Moe = "Qwen3MoeForCausalLM";
const char* kKimi = "KimiLinearForCausalLM";
const std::string kMixerLetters = "ASMKGDL";

std::string supported_list() {
  std::string out;
  for (const auto& a : TransformerConfig::supported_architectures()) out += (out.empty() ? "" : ", ") + a;
  return out;
}
}  // namespace

const std::vector<std::string>& TransformerConfig::supported_architectures() {
  static const std::vector<std::string> a = {kLlama, kMistral, kQwen2, kQwen3, kQwen3Moe, kKimi};
  return a;
}

bool is_linear_mixer(MixerKind k) {
  return k == MixerKind::KDA || k == MixerKind::GDN || k == MixerKind::DeltaNet || k == MixerKind::GLA;
}

MixerKind TransformerConfig::mixer_kind(int64_t i) const {
  if (layer_pattern.empty()) return sliding_window > 0 ? MixerKind::Sliding : MixerKind::Attention;
  return MixerKind(layer_pattern[size_t(i) % layer_pattern.size()]);
}

bool TransformerConfig::has_linear_mixers() const {
  for (int64_t i = 0; i < num_hidden_layers; ++i)
    if (is_linear_mixer(mixer_kind(i))) return true;
  return false;
}

DeltaAttentionConfig TransformerConfig::delta_config(int64_t layer) const {
  DeltaAttentionConfig d;
  MixerKind k = mixer_kind(layer);
  d.mixer = k == MixerKind::GDN ? LinearMixer::GDN
            : k == MixerKind::DeltaNet ? LinearMixer::DeltaNet
            : k == MixerKind::GLA ? LinearMixer::GLA
                                  : LinearMixer::KDA;
  d.hidden = hidden_size;
  d.n_heads = resolved_linear_heads();
  d.head_dim = resolved_linear_head_dim();
  d.conv_size = short_conv_kernel_size;
  d.norm_eps = rms_norm_eps;
  d.layer_index = layer;
  return d;
}

MLAConfig TransformerConfig::mla_config() const {
  MLAConfig m;
  m.hidden = hidden_size;
  m.n_heads = num_attention_heads;
  m.q_lora_rank = q_lora_rank;
  m.kv_lora_rank = kv_lora_rank;
  m.qk_nope_head_dim = qk_nope_head_dim;
  m.qk_rope_head_dim = qk_rope_head_dim;
  m.v_head_dim = v_head_dim;
  m.use_nope = mla_use_nope;
  m.norm_eps = rms_norm_eps;
  m.kv_norm_eps = kv_a_layernorm_eps;
  m.rope.theta = rope_theta;
  m.rope.scaling = rope_scaling;
  return m;
}

bool TransformerConfig::has_qk_norm() const { return architecture == kQwen3 || architecture == kQwen3Moe; }

bool TransformerConfig::is_moe_layer(int64_t i) const {
  if (num_experts <= 0 || decoder_sparse_step <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), i) != mlp_only_layers.end()) return false;
  if (i < first_k_dense_replace || moe_layer_freq <= 0 || i % moe_layer_freq != 0) return false;
  return (i + 1) % decoder_sparse_step == 0;
}

MoEConfig TransformerConfig::moe_config() const {
  MoEConfig m;
  m.hidden = hidden_size;
  m.num_experts = num_experts;
  m.top_k = num_experts_per_tok;
  m.expert_intermediate = moe_intermediate_size;
  m.norm_topk_prob = norm_topk_prob;
  m.router = scoring_func == "sigmoid" ? MoEConfig::Router::Sigmoid : MoEConfig::Router::Softmax;
  m.routed_scaling_factor = routed_scaling_factor;
  m.bias_in_weights = moe_router_bias_in_weights;
  m.num_shared_experts = n_shared_experts;
  m.mixtral_expert_names = architecture == "KimiLinearForCausalLM";  // block_sparse_moe.experts.{e}.w1/w2/w3
  return m;
}

namespace {
// Upper bounds on the sizes a config may give (far above any published model): they keep every size
// product inside int64 and every loop over layers short, before anything is allocated. What the
// weights hold bounds a loaded model further (model_check.h).
constexpr int64_t kMaxDim = int64_t(1) << 20;        // hidden, intermediate and head sizes, ranks
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxLayers = int64_t(1) << 14;
constexpr int64_t kMaxHeads = int64_t(1) << 14;
constexpr int64_t kMaxExperts = int64_t(1) << 16;
constexpr int64_t kMaxPositions = (int64_t(1) << 31) - 1;
constexpr int64_t kMaxConvKernel = 1024;

void check_limit(int64_t v, int64_t limit, const char* field) {
  LMLAB_CHECK(v <= limit, ConfigError, "[config] ", field, " = ", v, " is above lmlab's limit of ", limit);
}
}  // namespace

void check_config_limits(const TransformerConfig& c) {
  check_limit(c.vocab_size, kMaxVocab, "vocab_size");
  check_limit(c.hidden_size, kMaxDim, "hidden_size");
  check_limit(c.intermediate_size, kMaxDim, "intermediate_size");
  check_limit(c.num_hidden_layers, kMaxLayers, "num_hidden_layers");
  check_limit(c.num_attention_heads, kMaxHeads, "num_attention_heads");
  check_limit(c.num_key_value_heads, kMaxHeads, "num_key_value_heads");
  check_limit(c.head_dim, kMaxDim, "head_dim");
  check_limit(c.max_position_embeddings, kMaxPositions, "max_position_embeddings");
  check_limit(c.sliding_window, kMaxPositions, "sliding_window");
  check_limit(c.num_experts, kMaxExperts, "num_experts");
  check_limit(c.num_experts_per_tok, kMaxExperts, "num_experts_per_tok");
  check_limit(c.moe_intermediate_size, kMaxDim, "moe_intermediate_size");
  check_limit(c.n_shared_experts, kMaxExperts, "n_shared_experts");
  check_limit(int64_t(c.layer_pattern.size()), kMaxLayers, "the length of layer_pattern");
  check_limit(int64_t(c.mlp_only_layers.size()), kMaxLayers, "the length of mlp_only_layers");
  check_limit(c.linear_num_heads, kMaxHeads, "linear_attn_config.num_heads");
  check_limit(c.linear_head_dim, kMaxDim, "linear_attn_config.head_dim");
  check_limit(c.short_conv_kernel_size, kMaxConvKernel, "linear_attn_config.short_conv_kernel_size");
  check_limit(c.q_lora_rank, kMaxDim, "q_lora_rank");
  check_limit(c.kv_lora_rank, kMaxDim, "kv_lora_rank");
  check_limit(c.qk_nope_head_dim, kMaxDim, "qk_nope_head_dim");
  check_limit(c.qk_rope_head_dim, kMaxDim, "qk_rope_head_dim");
  check_limit(c.v_head_dim, kMaxDim, "v_head_dim");
  check_limit(int64_t(c.rope_scaling.freq_factors.size()), kMaxDim, "the length of rope_freq_factors");
}

void TransformerConfig::validate() const {
  auto pos = [](int64_t v, const char* f) {
    LMLAB_CHECK(v > 0, ConfigError, "[config] ", f, " must be positive, got ", v);
  };
  check_config_limits(*this);
  const auto& archs = supported_architectures();
  LMLAB_CHECK(std::find(archs.begin(), archs.end(), architecture) != archs.end(), ConfigError,
              "[config] architecture '", architecture, "' is not supported (supported: ", supported_list(), ")");
  pos(vocab_size, "vocab_size");
  pos(hidden_size, "hidden_size");
  pos(num_hidden_layers, "num_hidden_layers");
  pos(num_attention_heads, "num_attention_heads");
  pos(num_key_value_heads, "num_key_value_heads");
  pos(max_position_embeddings, "max_position_embeddings");
  LMLAB_CHECK(head_dim > 0 || hidden_size % num_attention_heads == 0, ConfigError, "[config] hidden_size (",
              hidden_size, ") must be divisible by num_attention_heads (", num_attention_heads, ")");
  LMLAB_CHECK(head_dim >= 0, ConfigError, "[config] head_dim must be >= 0, got ", head_dim);
  LMLAB_CHECK(num_attention_heads % num_key_value_heads == 0, ConfigError, "[config] num_attention_heads (",
              num_attention_heads, ") must be a multiple of num_key_value_heads (", num_key_value_heads, ")");
  LMLAB_CHECK(resolved_head_dim() % 2 == 0, ConfigError, "[config] head dimension ", resolved_head_dim(),
              " must be even for rotary embeddings");
  LMLAB_CHECK(rms_norm_eps > 0, ConfigError, "[config] rms_norm_eps must be positive, got ", rms_norm_eps);
  LMLAB_CHECK(rope_theta > 0, ConfigError, "[config] rope_theta must be positive, got ", rope_theta);
  if (!rope_scaling.freq_factors.empty()) {
    const int64_t rot = qk_rope_head_dim > 0 ? qk_rope_head_dim : resolved_head_dim();
    LMLAB_CHECK(int64_t(rope_scaling.freq_factors.size()) == rot / 2, ConfigError, "[config] rope_freq_factors has ",
                rope_scaling.freq_factors.size(), " entries, expected rotary dim / 2 = ", rot / 2);
    for (double v : rope_scaling.freq_factors)
      LMLAB_CHECK(std::isfinite(v) && v > 0, ConfigError, "[config] rope_freq_factors must be finite and positive, got ",
                  v);
  }
  {
    // theta and rope_scaling as the rotary embedding will read them (factor, llama3 / yarn parameters)
    RopeConfig r;
    r.head_dim = qk_rope_head_dim > 0 ? qk_rope_head_dim : resolved_head_dim();
    r.theta = rope_theta;
    r.scaling = rope_scaling;
    (void)rope_freq_factors(r);
    (void)rope_attention_factor(r);
  }
  LMLAB_CHECK(sliding_window >= 0, ConfigError, "[config] sliding_window must be >= 0, got ", sliding_window);
  LMLAB_CHECK(initializer_range > 0, ConfigError, "[config] initializer_range must be positive, got ",
              initializer_range);
  // MoE fields
  LMLAB_CHECK(num_experts >= 0, ConfigError, "[config] num_experts must be >= 0 (0 = dense), got ", num_experts);
  LMLAB_CHECK(num_experts == 0 || architecture == kQwen3Moe || architecture == kKimi, ConfigError,
              "[config] num_experts = ", num_experts, " needs architecture ", kQwen3Moe, " or ", kKimi, " (got ",
              architecture, ")");
  LMLAB_CHECK(first_k_dense_replace >= 0, ConfigError, "[config] first_k_dense_replace must be >= 0, got ",
              first_k_dense_replace);
  LMLAB_CHECK(moe_layer_freq > 0, ConfigError, "[config] moe_layer_freq must be positive, got ", moe_layer_freq);
  // Layer schedule
  bool any_mla = false, any_linear = false;
  for (size_t i = 0; i < layer_pattern.size(); ++i) {
    char ch = layer_pattern[i];
    LMLAB_CHECK(kMixerLetters.find(ch) != std::string::npos, ConfigError, "[config] layer_pattern '", layer_pattern,
                "' has unknown mixer letter '", ch, "' at ", i, " (expected one of ", kMixerLetters,
                ": A attention, S sliding window, M MLA, K KDA, G GDN, D DeltaNet, L gated linear attention)");
  }
  LMLAB_CHECK(int64_t(layer_pattern.size()) <= num_hidden_layers, ConfigError, "[config] layer_pattern '",
              layer_pattern, "' is longer than num_hidden_layers (", num_hidden_layers, ")");
  for (int64_t i = 0; i < num_hidden_layers; ++i) {
    MixerKind k = mixer_kind(i);
    any_mla |= k == MixerKind::MLA;
    any_linear |= is_linear_mixer(k);
    LMLAB_CHECK(k != MixerKind::Sliding || sliding_window > 0, ConfigError, "[config] layer_pattern '", layer_pattern,
                "' has sliding-window layers ('S') but sliding_window is ", sliding_window);
  }
  if (any_linear) {
    LMLAB_CHECK(linear_num_heads >= 0, ConfigError, "[config] linear_attn_config.num_heads must be >= 0, got ",
                linear_num_heads);
    LMLAB_CHECK(linear_head_dim >= 0, ConfigError, "[config] linear_attn_config.head_dim must be >= 0, got ",
                linear_head_dim);
    LMLAB_CHECK(linear_head_dim > 0 || hidden_size % resolved_linear_heads() == 0, ConfigError,
                "[config] hidden_size (", hidden_size, ") must be divisible by the linear-attention heads "
                "(linear_attn_config.num_heads = ", resolved_linear_heads(), ") when linear_attn_config.head_dim is unset");
    LMLAB_CHECK(short_conv_kernel_size >= 0, ConfigError,
                "[config] linear_attn_config.short_conv_kernel_size must be >= 0, got ", short_conv_kernel_size);
  }
  if (any_mla) {
    pos(kv_lora_rank, "kv_lora_rank");
    pos(v_head_dim, "v_head_dim");
    LMLAB_CHECK(q_lora_rank >= 0, ConfigError, "[config] q_lora_rank must be >= 0 (0 = none), got ", q_lora_rank);
    LMLAB_CHECK(qk_nope_head_dim >= 0 && qk_rope_head_dim >= 0 && qk_nope_head_dim + qk_rope_head_dim > 0, ConfigError,
                "[config] qk_nope_head_dim (", qk_nope_head_dim, ") + qk_rope_head_dim (", qk_rope_head_dim,
                ") must be positive");
    LMLAB_CHECK(qk_rope_head_dim % 2 == 0, ConfigError, "[config] qk_rope_head_dim must be even, got ",
                qk_rope_head_dim);
  }
  LMLAB_CHECK(std::isfinite(kv_a_layernorm_eps) && kv_a_layernorm_eps >= 0, ConfigError,
              "[config] kv_a_layernorm_eps must be >= 0 (0 = rms_norm_eps), got ", kv_a_layernorm_eps);
  bool any_dense = false;
  if (num_experts > 0) {
    pos(num_experts_per_tok, "num_experts_per_tok");
    LMLAB_CHECK(num_experts_per_tok <= num_experts, ConfigError, "[config] num_experts_per_tok (", num_experts_per_tok,
                ") must not exceed num_experts (", num_experts, ")");
    pos(moe_intermediate_size, "moe_intermediate_size");
    pos(decoder_sparse_step, "decoder_sparse_step");
    std::vector<char> listed(size_t(num_hidden_layers), 0);
    for (int64_t l : mlp_only_layers) {
      LMLAB_CHECK(l >= 0 && l < num_hidden_layers, ConfigError, "[config] mlp_only_layers entry ", l,
                  " is not a layer index in [0, ", num_hidden_layers, ")");
      LMLAB_CHECK(!listed[size_t(l)], ConfigError, "[config] mlp_only_layers lists layer ", l, " twice");
      listed[size_t(l)] = 1;
    }
    LMLAB_CHECK(scoring_func == "softmax" || scoring_func == "sigmoid", ConfigError, "[config] scoring_func '",
                scoring_func, "' is not supported (expected softmax or sigmoid)");
    LMLAB_CHECK(n_shared_experts >= 0, ConfigError, "[config] n_shared_experts must be >= 0, got ", n_shared_experts);
    LMLAB_CHECK(std::isfinite(routed_scaling_factor) && routed_scaling_factor > 0, ConfigError,
                "[config] routed_scaling_factor must be positive, got ", routed_scaling_factor);
    LMLAB_CHECK(router_aux_loss_coef >= 0, ConfigError, "[config] router_aux_loss_coef must be >= 0, got ",
                router_aux_loss_coef);
    LMLAB_CHECK(!moe_router_bias_in_weights || scoring_func == "sigmoid", ConfigError,
                "[config] moe_router_bias_in_weights needs the sigmoid router (scoring_func / "
                "moe_router_activation_func 'sigmoid', got '", scoring_func, "')");
    for (int64_t l = 0; l < num_hidden_layers && !any_dense; ++l) any_dense = listed[size_t(l)] || !is_moe_layer(l);
  } else {
    any_dense = true;
  }
  // Qwen3-30B-A3B lists an intermediate_size although no layer is dense; only dense layers need it.
  if (any_dense) pos(intermediate_size, "intermediate_size");
}

std::string TransformerConfig::to_json() const {
  nlohmann::ordered_json j;
  j["architectures"] = {architecture};
  j["model_type"] = architecture == kMistral ? "mistral"
                    : architecture == kQwen2  ? "qwen2"
                    : architecture == kQwen3  ? "qwen3"
                    : architecture == kQwen3Moe ? "qwen3_moe"
                    : architecture == kKimi ? "kimi_linear"
                                                : "llama";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = resolved_head_dim();
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  using T = RopeScaling::Type;
  if (rope_scaling.type == T::None) {
    j["rope_scaling"] = nullptr;
  } else {
    nlohmann::ordered_json r;
    r["rope_type"] = rope_scaling.type == T::Linear ? "linear" : rope_scaling.type == T::Llama3 ? "llama3" : "yarn";
    r["factor"] = rope_scaling.factor;
    if (rope_scaling.type == T::Llama3) {
      r["low_freq_factor"] = rope_scaling.low_freq_factor;
      r["high_freq_factor"] = rope_scaling.high_freq_factor;
      r["original_max_position_embeddings"] = rope_scaling.original_max_position;
    } else if (rope_scaling.type == T::Yarn) {
      r["beta_fast"] = rope_scaling.beta_fast;
      r["beta_slow"] = rope_scaling.beta_slow;
      r["original_max_position_embeddings"] = rope_scaling.original_max_position;
      if (rope_scaling.attention_factor > 0) r["attention_factor"] = rope_scaling.attention_factor;
      if (!rope_scaling.truncate) r["truncate"] = false;
    }
    j["rope_scaling"] = r;
  }
  // lmlab's own key (Hugging Face has no form for explicit factors; transformers ignores it, so
  // gguf_to_hf_folder refuses such a model rather than write a config that runs differently there).
  if (!rope_scaling.freq_factors.empty()) j["rope_freq_factors"] = rope_scaling.freq_factors;
  j["tie_word_embeddings"] = tie_word_embeddings;
  // Qwen2's bias is implied by the architecture; its config.json has no attention_bias field.
  if (architecture != kQwen2) j["attention_bias"] = attention_bias;
  j["sliding_window"] = sliding_window > 0 ? nlohmann::ordered_json(sliding_window) : nlohmann::ordered_json(nullptr);
  if (architecture == kQwen2 || architecture == kQwen3 || architecture == kQwen3Moe) {
    j["use_sliding_window"] = sliding_window > 0;
    j["max_window_layers"] = 0;  // HF Qwen: layers >= max_window_layers slide; lmlab slides all or none
  }
  if (architecture == kQwen3Moe) {
    j["num_experts"] = num_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["norm_topk_prob"] = norm_topk_prob;
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["mlp_only_layers"] = mlp_only_layers;
    j["router_aux_loss_coef"] = router_aux_loss_coef;
    j["output_router_logits"] = output_router_logits;
    if (scoring_func != "softmax") j["scoring_func"] = scoring_func;
    if (n_shared_experts > 0) j["n_shared_experts"] = n_shared_experts;
    if (routed_scaling_factor != 1.0) j["routed_scaling_factor"] = routed_scaling_factor;
  }
  if (architecture == kKimi) {
    // Kimi-Linear names (KimiLinearConfig); num_experts null = dense.
    j["num_experts"] = num_experts > 0 ? nlohmann::ordered_json(num_experts) : nlohmann::ordered_json(nullptr);
    if (num_experts > 0) {
      j["num_experts_per_token"] = num_experts_per_tok;
      j["moe_intermediate_size"] = moe_intermediate_size;
      j["moe_renormalize"] = norm_topk_prob;
      j["moe_router_activation_func"] = scoring_func;
      j["num_shared_experts"] = n_shared_experts;
      j["routed_scaling_factor"] = routed_scaling_factor;
      j["router_aux_loss_coef"] = router_aux_loss_coef;
    }
  }
  if (moe_router_bias_in_weights) j["moe_router_bias_in_weights"] = true;
  if (first_k_dense_replace > 0) j["first_k_dense_replace"] = first_k_dense_replace;
  if (moe_layer_freq != 1) j["moe_layer_freq"] = moe_layer_freq;
  bool trivial = true, any_mla = false;
  for (int64_t i = 0; i < num_hidden_layers; ++i) {
    trivial &= mixer_kind(i) == (sliding_window > 0 ? MixerKind::Sliding : MixerKind::Attention);
    any_mla |= mixer_kind(i) == MixerKind::MLA;
  }
  if (!trivial) j["layer_pattern"] = layer_pattern;
  if (any_mla || architecture == kKimi) {
    j["q_lora_rank"] = q_lora_rank > 0 ? nlohmann::ordered_json(q_lora_rank) : nlohmann::ordered_json(nullptr);
    j["kv_lora_rank"] = kv_lora_rank;
    j["qk_nope_head_dim"] = qk_nope_head_dim;
    j["qk_rope_head_dim"] = qk_rope_head_dim;
    j["v_head_dim"] = v_head_dim;
    j["mla_use_nope"] = mla_use_nope;
    if (kv_a_layernorm_eps > 0) j["kv_a_layernorm_eps"] = kv_a_layernorm_eps;
  }
  if (has_linear_mixers()) {
    // Kimi's layout: 1-based layer numbers; full_attn_layers lists every softmax / MLA layer.
    nlohmann::ordered_json la, kda = nlohmann::ordered_json::array(), full = nlohmann::ordered_json::array();
    for (int64_t i = 0; i < num_hidden_layers; ++i) {
      MixerKind k = mixer_kind(i);
      if (k == MixerKind::KDA) kda.push_back(i + 1);
      else if (!is_linear_mixer(k)) full.push_back(i + 1);
    }
    la["kda_layers"] = kda;
    la["full_attn_layers"] = full;
    la["num_heads"] = resolved_linear_heads();
    la["head_dim"] = resolved_linear_head_dim();
    la["short_conv_kernel_size"] = short_conv_kernel_size;
    j["linear_attn_config"] = la;
  }
  j["hidden_act"] = "silu";
  j["initializer_range"] = initializer_range;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

TransformerConfig parse_config_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[config] '", source, "' is not valid JSON: ", e.what()));
  }
  LMLAB_CHECK(j.is_object(), FormatError, "[config] '", source, "' must be a JSON object");
  TransformerConfig c;
  auto get_int = [&](const char* f, int64_t& dst, bool required) {
    if (!j.contains(f) || j[f].is_null()) {
      LMLAB_CHECK(!required, ConfigError, "[config] '", source, "' lacks required field '", f, "'");
      return;
    }
    LMLAB_CHECK(j[f].is_number_integer(), ConfigError, "[config] '", source, "' field '", f,
                "' must be an integer, got ", j[f].dump());
    LMLAB_CHECK(!j[f].is_number_unsigned() || j[f].get<uint64_t>() <= uint64_t(INT64_MAX), ConfigError, "[config] '",
                source, "' field '", f, "' = ", j[f].dump(), " does not fit in an int64");
    dst = j[f].get<int64_t>();
  };
  auto get_num = [&](const char* f, double& dst) {
    if (!j.contains(f) || j[f].is_null()) return;
    LMLAB_CHECK(j[f].is_number(), ConfigError, "[config] '", source, "' field '", f, "' must be a number, got ",
                j[f].dump());
    dst = j[f].get<double>();
  };
  if (j.contains("architectures")) {
    LMLAB_CHECK(j["architectures"].is_array() && !j["architectures"].empty() && j["architectures"][0].is_string(),
                ConfigError, "[config] '", source, "' field 'architectures' must be a list of names");
    c.architecture = j["architectures"][0].get<std::string>();
    const auto& archs = TransformerConfig::supported_architectures();
    LMLAB_CHECK(std::find(archs.begin(), archs.end(), c.architecture) != archs.end(), ConfigError, "[config] '",
                source, "' architecture '", c.architecture, "' is not supported (supported: ", supported_list(), ")");
  }
  get_int("vocab_size", c.vocab_size, true);
  get_int("hidden_size", c.hidden_size, true);
  get_int("intermediate_size", c.intermediate_size, true);
  get_int("num_hidden_layers", c.num_hidden_layers, true);
  get_int("num_attention_heads", c.num_attention_heads, true);
  c.num_key_value_heads = c.num_attention_heads;
  get_int("num_key_value_heads", c.num_key_value_heads, false);
  get_int("head_dim", c.head_dim, false);
  get_int("max_position_embeddings", c.max_position_embeddings, false);
  get_num("rms_norm_eps", c.rms_norm_eps);
  get_num("rope_theta", c.rope_theta);
  get_num("initializer_range", c.initializer_range);
  get_int("sliding_window", c.sliding_window, false);
  if (j.contains("use_sliding_window") && j["use_sliding_window"].is_boolean()) {
    if (!j["use_sliding_window"].get<bool>()) {
      c.sliding_window = 0;  // Qwen2/3 list a window but disable it
    } else if (c.sliding_window > 0) {
      // HF Qwen: layers i >= max_window_layers slide (default 28); lmlab slides every layer or none.
      int64_t mwl = 28;
      get_int("max_window_layers", mwl, false);
      if (mwl >= c.num_hidden_layers) c.sliding_window = 0;
      else
        LMLAB_CHECK(mwl <= 0, ConfigError, "[config] '", source, "' max_window_layers = ", mwl,
                    " mixes full and sliding-window layers, which lmlab does not support (0 or >= ",
                    c.num_hidden_layers, " layers)");
    }
  }
  // A token id outside int32 is no token (a list, as Llama 3 writes eos_token_id, is left to the tokenizer).
  auto token_id = [&](const char* f, int64_t& dst) {
    if (j.contains(f) && j[f].is_number_integer() && !j[f].is_number_unsigned() && j[f].get<int64_t>() >= 0 &&
        j[f].get<int64_t>() <= INT32_MAX)
      dst = j[f].get<int64_t>();
    else if (j.contains(f) && j[f].is_number_unsigned() && j[f].get<uint64_t>() <= uint64_t(INT32_MAX))
      dst = int64_t(j[f].get<uint64_t>());
  };
  token_id("bos_token_id", c.bos_token_id);
  token_id("eos_token_id", c.eos_token_id);
  if (j.contains("tie_word_embeddings")) {
    LMLAB_CHECK(j["tie_word_embeddings"].is_boolean(), ConfigError, "[config] '", source,
                "' field 'tie_word_embeddings' must be true or false");
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  } else {
    c.tie_word_embeddings = false;  // HF's default for Llama
  }
  auto get_bool = [&](const char* f, bool& dst) {
    if (!j.contains(f) || j[f].is_null()) return;
    LMLAB_CHECK(j[f].is_boolean(), ConfigError, "[config] '", source, "' field '", f, "' must be true or false, got ",
                j[f].dump());
    dst = j[f].get<bool>();
  };
  get_bool("attention_bias", c.attention_bias);
  if (c.architecture == kQwen2) c.attention_bias = true;  // Qwen2Attention: q/k/v always biased
  if (c.architecture == kQwen3Moe) {
    // HF Qwen3MoeConfig defaults for absent fields
    c.num_experts = 128;
    c.num_experts_per_tok = 8;
    c.moe_intermediate_size = 768;
    c.norm_topk_prob = false;
    c.decoder_sparse_step = 1;
    get_int("num_experts", c.num_experts, false);
    get_int("num_experts_per_tok", c.num_experts_per_tok, false);
    get_int("moe_intermediate_size", c.moe_intermediate_size, false);
    get_int("decoder_sparse_step", c.decoder_sparse_step, false);
    get_bool("norm_topk_prob", c.norm_topk_prob);
    get_bool("output_router_logits", c.output_router_logits);
    get_num("router_aux_loss_coef", c.router_aux_loss_coef);
    if (j.contains("mlp_only_layers") && !j["mlp_only_layers"].is_null()) {
      const auto& m = j["mlp_only_layers"];
      LMLAB_CHECK(m.is_array(), ConfigError, "[config] '", source, "' field 'mlp_only_layers' must be a list of layer indices");
      for (const auto& v : m) {
        LMLAB_CHECK(v.is_number_integer(), ConfigError, "[config] '", source,
                    "' field 'mlp_only_layers' must hold integers, got ", v.dump());
        c.mlp_only_layers.push_back(v.get<int64_t>());
      }
    }
    if (j.contains("scoring_func") && !j["scoring_func"].is_null()) {
      LMLAB_CHECK(j["scoring_func"].is_string(), ConfigError, "[config] '", source, "' field 'scoring_func' must be a string");
      c.scoring_func = j["scoring_func"].get<std::string>();
    }
    get_int("n_shared_experts", c.n_shared_experts, false);
    get_num("routed_scaling_factor", c.routed_scaling_factor);
  }
  if (c.architecture == kKimi) {
    // KimiLinearConfig defaults for absent fields; num_experts null = dense.
    c.scoring_func = "sigmoid";
    c.norm_topk_prob = true;
    if (!j.contains("max_position_embeddings")) get_int("model_max_length", c.max_position_embeddings, false);
    get_int("num_experts", c.num_experts, false);
    get_int("num_experts_per_token", c.num_experts_per_tok, false);
    get_int("moe_intermediate_size", c.moe_intermediate_size, false);
    get_int("num_shared_experts", c.n_shared_experts, false);
    get_bool("moe_renormalize", c.norm_topk_prob);
    get_num("routed_scaling_factor", c.routed_scaling_factor);
    get_num("router_aux_loss_coef", c.router_aux_loss_coef);
    if (j.contains("moe_router_activation_func") && j["moe_router_activation_func"].is_string())
      c.scoring_func = j["moe_router_activation_func"].get<std::string>();
    int64_t groups = 1;
    get_int("num_expert_group", groups, false);
    LMLAB_CHECK(groups <= 1, ConfigError, "[config] '", source, "' num_expert_group = ", groups,
                ": grouped top-k routing is not supported (expected 1)");
  }
  get_int("first_k_dense_replace", c.first_k_dense_replace, false);
  get_int("moe_layer_freq", c.moe_layer_freq, false);
  // MLA
  get_int("q_lora_rank", c.q_lora_rank, false);
  get_int("kv_lora_rank", c.kv_lora_rank, false);
  get_int("qk_nope_head_dim", c.qk_nope_head_dim, false);
  get_int("qk_rope_head_dim", c.qk_rope_head_dim, false);
  get_int("v_head_dim", c.v_head_dim, false);
  get_bool("mla_use_nope", c.mla_use_nope);
  get_num("kv_a_layernorm_eps", c.kv_a_layernorm_eps);
  get_bool("moe_router_bias_in_weights", c.moe_router_bias_in_weights);
  // Layer schedule: "layer_pattern" (lmlab) wins; else Kimi's linear_attn_config lists.
  if (j.contains("layer_pattern") && !j["layer_pattern"].is_null()) {
    LMLAB_CHECK(j["layer_pattern"].is_string(), ConfigError, "[config] '", source, "' field 'layer_pattern' must be a string");
    c.layer_pattern = j["layer_pattern"].get<std::string>();
  }
  if (j.contains("linear_attn_config") && !j["linear_attn_config"].is_null()) {
    const auto& la = j["linear_attn_config"];
    LMLAB_CHECK(la.is_object(), ConfigError, "[config] '", source, "' field 'linear_attn_config' must be an object");
    auto la_int = [&](const char* f, int64_t& dst) {
      if (!la.contains(f) || la[f].is_null()) return;
      LMLAB_CHECK(la[f].is_number_integer() && (!la[f].is_number_unsigned() || la[f].get<uint64_t>() <= uint64_t(INT64_MAX)),
                  ConfigError, "[config] '", source, "' field 'linear_attn_config.", f, "' must be an int64, got ",
                  la[f].dump());
      dst = la[f].get<int64_t>();
    };
    la_int("num_heads", c.linear_num_heads);
    la_int("head_dim", c.linear_head_dim);
    la_int("short_conv_kernel_size", c.short_conv_kernel_size);
    if (c.layer_pattern.empty()) {
      int64_t base = 1;  // Kimi lists 1-based layer numbers; some derived configs say kda_layer_index_base 0
      la_int("kda_layer_index_base", base);
      LMLAB_CHECK(base == 0 || base == 1, ConfigError, "[config] '", source,
                  "' linear_attn_config.kda_layer_index_base must be 0 or 1, got ", base);
      LMLAB_CHECK(c.num_hidden_layers >= 0, ConfigError, "[config] '", source, "' num_hidden_layers must be positive, got ",
                  c.num_hidden_layers);
      check_config_limits(c);  // before a string of num_hidden_layers letters is made
      std::string pat(size_t(c.num_hidden_layers), '?');
      auto mark = [&](const char* f, char letter) {
        LMLAB_CHECK(la.contains(f) && la[f].is_array(), ConfigError, "[config] '", source, "' field 'linear_attn_config.",
                    f, "' must be a list of layer numbers");
        for (const auto& v : la[f]) {
          LMLAB_CHECK(v.is_number_integer(), ConfigError, "[config] '", source, "' linear_attn_config.", f,
                      " must hold integers, got ", v.dump());
          const bool in_range = v.is_number_unsigned()
                                    ? v.get<uint64_t>() >= uint64_t(base) &&
                                          v.get<uint64_t>() < uint64_t(c.num_hidden_layers + base)
                                    : v.get<int64_t>() >= base && v.get<int64_t>() < c.num_hidden_layers + base;
          LMLAB_CHECK(in_range, ConfigError, "[config] '", source, "' linear_attn_config.", f, " entry ", v.dump(),
                      " is not a layer number in [", base, ", ", c.num_hidden_layers + base, ")");
          const int64_t i = v.get<int64_t>() - base;
          LMLAB_CHECK(pat[size_t(i)] == '?', ConfigError, "[config] '", source, "' layer ", v.dump(),
                      " is listed twice in linear_attn_config.kda_layers / full_attn_layers");
          pat[size_t(i)] = letter;
        }
      };
      mark("kda_layers", 'K');
      mark("full_attn_layers", c.kv_lora_rank > 0 ? 'M' : 'A');
      size_t miss = pat.find('?');
      LMLAB_CHECK(miss == std::string::npos, ConfigError, "[config] '", source, "' layer ", int64_t(miss) + base,
                  " is in neither linear_attn_config.kda_layers nor full_attn_layers");
      c.layer_pattern = pat;
    }
  } else if (c.architecture == kKimi && c.layer_pattern.empty() && c.kv_lora_rank > 0) {
    c.layer_pattern = "M";  // KimiLinearConfig without linear_attn_config: every layer MLA
  }
  if (j.contains("hidden_act") && j["hidden_act"].is_string()) {
    std::string act = j["hidden_act"];
    LMLAB_CHECK(act == "silu" || act == "swish", ConfigError, "[config] '", source, "' hidden_act '", act,
                "' is not supported (expected silu)");
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& r = j["rope_scaling"];
    LMLAB_CHECK(r.is_object(), ConfigError, "[config] '", source, "' field 'rope_scaling' must be an object or null");
    const char* type_key = r.contains("rope_type") ? "rope_type" : r.contains("type") ? "type" : nullptr;
    LMLAB_CHECK(!type_key || r[type_key].is_string(), ConfigError, "[config] '", source, "' field 'rope_scaling.",
                type_key ? type_key : "", "' must be a string, got ", type_key ? r[type_key].dump() : "");
    std::string type = type_key ? r[type_key].get<std::string>() : "";
    auto num = [&](const char* f, double& dst) {
      if (r.contains(f) && r[f].is_number()) dst = r[f].get<double>();
    };
    if (type == "linear") c.rope_scaling.type = RopeScaling::Type::Linear;
    else if (type == "llama3") c.rope_scaling.type = RopeScaling::Type::Llama3;
    else if (type == "yarn") c.rope_scaling.type = RopeScaling::Type::Yarn;
    else if (type == "default") c.rope_scaling.type = RopeScaling::Type::None;
    else
      throw ConfigError(str_cat("[config] '", source, "' rope_scaling type '", type,
                                "' is not supported (expected linear, llama3, yarn or default)"));
    num("factor", c.rope_scaling.factor);
    num("low_freq_factor", c.rope_scaling.low_freq_factor);
    num("high_freq_factor", c.rope_scaling.high_freq_factor);
    num("beta_fast", c.rope_scaling.beta_fast);
    num("beta_slow", c.rope_scaling.beta_slow);
    num("attention_factor", c.rope_scaling.attention_factor);
    if (r.contains("original_max_position_embeddings") && r["original_max_position_embeddings"].is_number_integer())
      c.rope_scaling.original_max_position = r["original_max_position_embeddings"].get<int64_t>();
    else if (c.rope_scaling.type == RopeScaling::Type::Yarn)
      c.rope_scaling.original_max_position = c.max_position_embeddings;  // HF yarn's fallback
    if (c.rope_scaling.type == RopeScaling::Type::Yarn) {
      if (r.contains("truncate") && r["truncate"].is_boolean()) c.rope_scaling.truncate = r["truncate"].get<bool>();
      // HF: without attention_factor, mscale and mscale_all_dim (DeepSeek) give
      // get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim), get_mscale(s, m) = 0.1 m ln s + 1.
      double mscale = 0, mscale_all = 0;
      num("mscale", mscale);
      num("mscale_all_dim", mscale_all);
      if (c.rope_scaling.attention_factor <= 0 && mscale != 0 && mscale_all != 0 && c.rope_scaling.factor > 1) {
        double f = std::log(c.rope_scaling.factor);
        c.rope_scaling.attention_factor = (0.1 * mscale * f + 1.0) / (0.1 * mscale_all * f + 1.0);
      }
    }
  }
  if (j.contains("rope_freq_factors")) {
    const auto& ff = j["rope_freq_factors"];
    LMLAB_CHECK(ff.is_array(), ConfigError, "[config] '", source, "' field 'rope_freq_factors' must be an array");
    for (const auto& v : ff) {
      LMLAB_CHECK(v.is_number(), ConfigError, "[config] '", source, "' field 'rope_freq_factors' must hold numbers");
      c.rope_scaling.freq_factors.push_back(v.get<double>());
    }
  }
  return c;
}

TransformerConfig TransformerConfig::from_json(const std::string& text, const std::string& source) {
  TransformerConfig c = parse_config_json(text, source);
  c.validate();
  return c;
}

TransformerConfig TransformerConfig::from_file(const std::string& path) {
  std::ifstream f(path);
  LMLAB_CHECK(f.good(), IoError, "[config] cannot read '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str(), path);
}

}  // namespace lmlab
