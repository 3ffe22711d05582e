// TransformerConfig <-> Hugging Face config.json (LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM fields), with validation that names the offending field.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmlab/models/transformer.h"

namespace lmlab {

void TransformerConfig::validate() const {
  auto pos = [](int64_t v, const char* f) {
    LMLAB_CHECK(v > 0, ConfigError, "[config] ", f, " must be positive, got ", v);
  };
  pos(vocab_size, "vocab_size");
  pos(hidden_size, "hidden_size");
  pos(intermediate_size, "intermediate_size");
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
  LMLAB_CHECK(sliding_window >= 0, ConfigError, "[config] sliding_window must be >= 0, got ", sliding_window);
  LMLAB_CHECK(initializer_range > 0, ConfigError, "[config] initializer_range must be positive, got ",
              initializer_range);
}

std::string TransformerConfig::to_json() const {
  nlohmann::ordered_json j;
  j["architectures"] = {architecture};
  j["model_type"] = architecture == "MistralForCausalLM" ? "mistral"
                    : architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama";
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
    }
    j["rope_scaling"] = r;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["attention_bias"] = attention_bias;
  j["sliding_window"] = sliding_window > 0 ? nlohmann::ordered_json(sliding_window) : nlohmann::ordered_json(nullptr);
  j["hidden_act"] = "silu";
  j["initializer_range"] = initializer_range;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  j["torch_dtype"] = "float32";
  return j.dump(2) + "\n";
}

TransformerConfig TransformerConfig::from_json(const std::string& text, const std::string& source) {
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
    const std::string& a = c.architecture;
    LMLAB_CHECK(a == "LlamaForCausalLM" || a == "MistralForCausalLM" || a == "Qwen2ForCausalLM", ConfigError,
                "[config] '", source, "' architecture '", a,
                "' is not supported by this model class (expected LlamaForCausalLM, MistralForCausalLM or "
                "Qwen2ForCausalLM)");
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
  if (j.contains("use_sliding_window") && j["use_sliding_window"].is_boolean() && !j["use_sliding_window"].get<bool>())
    c.sliding_window = 0;  // Qwen2 lists a window but disables it
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"];
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer()) c.eos_token_id = j["eos_token_id"];
  if (j.contains("tie_word_embeddings")) {
    LMLAB_CHECK(j["tie_word_embeddings"].is_boolean(), ConfigError, "[config] '", source,
                "' field 'tie_word_embeddings' must be true or false");
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  } else {
    c.tie_word_embeddings = false;  // HF's default for Llama
  }
  if (j.contains("attention_bias") && j["attention_bias"].is_boolean()) c.attention_bias = j["attention_bias"];
  if (c.architecture == "Qwen2ForCausalLM") c.attention_bias = true;
  if (j.contains("hidden_act") && j["hidden_act"].is_string()) {
    std::string act = j["hidden_act"];
    LMLAB_CHECK(act == "silu" || act == "swish", ConfigError, "[config] '", source, "' hidden_act '", act,
                "' is not supported (expected silu)");
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& r = j["rope_scaling"];
    LMLAB_CHECK(r.is_object(), ConfigError, "[config] '", source, "' field 'rope_scaling' must be an object or null");
    std::string type = r.contains("rope_type") ? r["rope_type"].get<std::string>()
                       : r.contains("type")    ? r["type"].get<std::string>()
                                               : "";
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
  }
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
