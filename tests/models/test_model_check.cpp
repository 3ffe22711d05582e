// A config against the weights it comes with (models/model_check.h): model_state_numel equals the
// built model's state dict for every mixer, FFN and head variant; sizes above lmlab's limits and
// sizes the weights do not hold are ConfigErrors naming the field, its value and what the weights
// hold, raised before anything is allocated (the huge cases finish at once).
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "lmlab/lmlab.h"
#include "lmlab/models/model_check.h"

using namespace lmlab;
using lmlab::test::expect_error;

namespace {

TransformerConfig llama() {
  TransformerConfig c;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  return c;
}

TransformerConfig qwen3_moe() {
  TransformerConfig c = llama();
  c.architecture = "Qwen3MoeForCausalLM";
  c.num_hidden_layers = 3;
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 16;
  c.mlp_only_layers = {1};
  return c;
}

// Kimi Linear: KDA + MLA (q_lora), sigmoid router with a shared expert, first layer dense.
TransformerConfig kimi() {
  TransformerConfig c = llama();
  c.architecture = "KimiLinearForCausalLM";
  c.num_hidden_layers = 4;
  c.tie_word_embeddings = false;
  c.layer_pattern = "KKKM";
  c.linear_num_heads = 2;
  c.linear_head_dim = 16;
  c.kv_lora_rank = 16;
  c.q_lora_rank = 8;
  c.qk_nope_head_dim = 8;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 8;
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 16;
  c.n_shared_experts = 1;
  c.scoring_func = "sigmoid";
  c.first_k_dense_replace = 1;
  return c;
}

int64_t built_numel(const TransformerConfig& c) {
  Transformer m(c, 1);
  int64_t n = 0;
  for (const auto& [name, t] : m.state_dict()) n += t.numel();
  return n;
}

TensorShapes shapes_of(const TransformerConfig& c) {
  Transformer m(c, 1);
  TensorShapes s;
  for (const auto& [name, t] : m.state_dict()) s.emplace(name, t.shape());
  return s;
}

// `c`'s config.json with `key` set to the JSON text `value`.
std::string json_with(const TransformerConfig& c, const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  j[key] = nlohmann::json::parse(value);
  return j.dump();
}

// f() throws ConfigError mentioning every one of `parts`, within a second.
template <class F>
void expect_fast_error(F&& f, std::initializer_list<std::string> parts) {
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& p : parts) expect_error<ConfigError>(f, p);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.0) << "the check must come before any allocation";
}

}  // namespace

TEST(ModelCheck, StateNumelMatchesTheBuiltModel) {
  std::vector<TransformerConfig> cs;
  cs.push_back(llama());
  TransformerConfig untied = llama();
  untied.tie_word_embeddings = false;
  untied.attention_bias = true;
  cs.push_back(untied);
  TransformerConfig q2 = llama();
  q2.architecture = "Qwen2ForCausalLM";
  cs.push_back(q2);
  TransformerConfig q3 = llama();
  q3.architecture = "Qwen3ForCausalLM";
  q3.head_dim = 16;
  cs.push_back(q3);
  cs.push_back(qwen3_moe());
  TransformerConfig moe_shared = qwen3_moe();
  moe_shared.n_shared_experts = 2;
  moe_shared.scoring_func = "sigmoid";
  cs.push_back(moe_shared);
  cs.push_back(kimi());
  TransformerConfig mixers = kimi();
  mixers.layer_pattern = "AGDLSM";
  mixers.num_hidden_layers = 6;
  mixers.sliding_window = 8;
  mixers.q_lora_rank = 0;
  mixers.short_conv_kernel_size = 0;
  mixers.num_experts = 0;
  mixers.n_shared_experts = 0;
  cs.push_back(mixers);
  for (const auto& c : cs) EXPECT_EQ(model_state_numel(c), built_numel(c)) << c.to_json();
  // saturates instead of wrapping
  TransformerConfig big = llama();
  big.hidden_size = int64_t(1) << 20;
  big.vocab_size = int64_t(1) << 24;
  big.intermediate_size = int64_t(1) << 20;
  big.num_hidden_layers = int64_t(1) << 14;
  big.num_attention_heads = 1 << 10;
  big.num_key_value_heads = 1 << 10;
  EXPECT_GT(model_state_numel(big), int64_t(1) << 55);
}

TEST(ModelCheck, SizesAboveTheLimitsAreRejectedByValidate) {
  const TransformerConfig c = llama();
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"num_hidden_layers", "2000000000"},
                                                        {"hidden_size", "4294967296"},
                                                        {"vocab_size", "100000000000"},
                                                        {"intermediate_size", "9000000000000"},
                                                        {"num_attention_heads", "1000000"},
                                                        {"max_position_embeddings", "1099511627776"}}) {
    expect_fast_error([&] { TransformerConfig::from_json(json_with(c, key, value)); },
                      {key + " = " + value, "above lmlab's limit"});
  }
  expect_error<ConfigError>([&] { TransformerConfig::from_json(json_with(c, "vocab_size", "18446744073709551615")); },
                            "does not fit in an int64");
  // Kimi's layer lists are expanded per layer: the limit comes first.
  std::string k = R"({"architectures": ["KimiLinearForCausalLM"], "vocab_size": 8, "hidden_size": 8,
    "intermediate_size": 8, "num_hidden_layers": 2000000000, "num_attention_heads": 2,
    "linear_attn_config": {"kda_layers": [1], "full_attn_layers": [2]}})";
  expect_fast_error([&] { TransformerConfig::from_json(k); }, {"num_hidden_layers = 2000000000"});
  k = R"({"architectures": ["KimiLinearForCausalLM"], "vocab_size": 8, "hidden_size": 8,
    "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
    "linear_attn_config": {"kda_layers": [-9223372036854775807], "full_attn_layers": [2], "kda_layer_index_base": -9223372036854775807}})";
  expect_error<ConfigError>([&] { TransformerConfig::from_json(k); }, "kda_layer_index_base must be 0 or 1");
  // rope_scaling's type must be a string, and its parameters are checked as the rotary embedding reads them
  expect_error<ConfigError>([&] { TransformerConfig::from_json(json_with(c, "rope_scaling", R"({"rope_type": 3})")); },
                            "rope_scaling.rope_type' must be a string");
  expect_error<ConfigError>(
      [&] { TransformerConfig::from_json(json_with(c, "rope_scaling", R"({"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 1})")); },
      "low_freq_factor < high_freq_factor");
  // a duplicate mlp_only_layers entry
  TransformerConfig m = qwen3_moe();
  m.mlp_only_layers = {1, 1};
  expect_error<ConfigError>([&] { m.validate(); }, "lists layer 1 twice");
}

TEST(ModelCheck, ConfigAgainstTheWeights) {
  for (const TransformerConfig& c : {llama(), qwen3_moe(), kimi()}) {
    const TensorShapes w = shapes_of(c);
    EXPECT_EQ(config_for_weights(c.to_json(), "config.json", w, "model.safetensors").to_json(), c.to_json());
    EXPECT_EQ(layer_indices(w, "model.layers.").size(), size_t(c.num_hidden_layers));
  }
  // only plain decimal layer numbers count
  const TensorShapes odd = {{"model.layers.3.x", {1}},  {"model.layers.03.x", {1}}, {"model.layers.x.y", {1}},
                            {"model.layers.7", {1}},    {"model.layers.1.a.b", {2}}, {"blk.99999999999.x", {1}},
                            {"blk.12.attn_q.weight", {1}}};
  EXPECT_EQ(layer_indices(odd, "model.layers."), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(layer_indices(odd, "blk."), (std::vector<int64_t>{12}));
  EXPECT_EQ(total_numel({{"a", {1 << 30, 1 << 30}}, {"b", {1 << 30}}}), (int64_t(1) << 60) + (1 << 30));
  EXPECT_EQ(total_numel({{"a", {int64_t(1) << 40, int64_t(1) << 40}}, {"b", {1}}}), std::numeric_limits<int64_t>::max());
  const TransformerConfig c = llama();
  const TensorShapes w = shapes_of(c);
  auto load = [&](const std::string& json) { return config_for_weights(json, "m/config.json", w, "m/model.safetensors"); };
  // The case from the field: two billion layers beside two, rejected at once (no model is built).
  expect_fast_error([&] { load(json_with(c, "num_hidden_layers", "2000000000")); },
                    {"num_hidden_layers = 2000000000", "'m/model.safetensors' holds 2 layers",
                     "model.layers.0 .. model.layers.1", "m/config.json"});
  expect_fast_error([&] { load(json_with(c, "num_hidden_layers", "3")); }, {"num_hidden_layers = 3", "holds 2 layers"});
  expect_fast_error([&] { load(json_with(c, "vocab_size", "16000000")); },
                    {"vocab_size = 16000000", "'model.embed_tokens.weight'", "[40, 32]"});
  expect_fast_error([&] { load(json_with(c, "hidden_size", "1048576")); }, {"hidden_size = 1048576", "[40, 32]"});
  expect_fast_error([&] { load(json_with(c, "intermediate_size", "1000000")); },
                    {"intermediate_size = 1000000", "'model.layers.0.mlp.gate_proj.weight'", "[48, 32]"});
  expect_fast_error([&] { load(json_with(c, "num_key_value_heads", "4")); },
                    {"num_key_value_heads x head_dim = 4 x 8", "k_proj.weight"});
  expect_fast_error([&] { load(json_with(c, "head_dim", "4096")); }, {"num_attention_heads x head_dim = 4 x 4096"});
  // a missing tensor is left to load_state_dict, which names it; a much larger model is refused here
  EXPECT_NO_THROW(load(json_with(c, "tie_word_embeddings", "false")));
  EXPECT_EQ(value_bound(1000), 2000 + (1 << 20));
  // a layer missing in the middle
  TensorShapes gap = w;
  for (auto it = gap.begin(); it != gap.end();)
    it = it->first.starts_with("model.layers.0.") ? gap.erase(it) : std::next(it);
  expect_fast_error([&] { config_for_weights(json_with(c, "num_hidden_layers", "1"), "c", gap, "w"); },
                    {"holds 1 layer", "model.layers.1 .. model.layers.1", "with gaps"});

  // MoE: experts, their width, and more experts in the file than the config says
  const TransformerConfig m = qwen3_moe();
  const TensorShapes mw = shapes_of(m);
  auto load_m = [&](const std::string& json) { return config_for_weights(json, "c", mw, "w"); };
  expect_fast_error([&] { load_m(json_with(m, "num_experts", "60000")); }, {"num_experts = 60000", "mlp.gate.weight"});
  expect_fast_error([&] { load_m(json_with(m, "moe_intermediate_size", "1000000")); },
                    {"moe_intermediate_size = 1000000", "experts.0.gate_proj.weight"});
  expect_fast_error([&] { load_m(json_with(m, "num_experts", "3")); }, {"num_experts = 3"});
  // a field no per-tensor check reaches: the value count bounds it
  expect_fast_error([&] { load_m(json_with(m, "n_shared_experts", "60000")); }, {"describes a model of", "holds only"});

  // Kimi: MLA ranks and the short convolution
  const TransformerConfig k = kimi();
  const TensorShapes kw = shapes_of(k);
  auto load_k = [&](const std::string& json) { return config_for_weights(json, "c", kw, "w"); };
  expect_fast_error([&] { load_k(json_with(k, "kv_lora_rank", "1000000")); }, {"kv_lora_rank + qk_rope_head_dim"});
  nlohmann::json kj = nlohmann::json::parse(k.to_json());
  kj["linear_attn_config"]["short_conv_kernel_size"] = 1000;
  expect_fast_error([&] { load_k(kj.dump()); }, {"short_conv_kernel_size = 1000", "q_conv1d.weight"});
  kj = nlohmann::json::parse(k.to_json());
  kj["linear_attn_config"]["num_heads"] = 1024;
  kj["linear_attn_config"]["head_dim"] = 1024;
  expect_fast_error([&] { load_k(kj.dump()); }, {"linear_attn_config.num_heads x head_dim = 1024 x 1024"});
}
