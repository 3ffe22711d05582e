// Qwen2 / Qwen3 / Qwen3-MoE in the one Transformer: HF config.json fields (read, write, defaults,
// validation naming the field), which layers are sparse, parameter names, yarn rope_scaling parsing,
// cached decoding equal to the full forward, and a tiny Qwen3-MoE that trains (loss decreases with the
// balance loss added, and experts stay in use).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "lmlab/lmlab.h"
#include "lmlab/models/transformer.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/train/optim.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;

namespace {

TransformerConfig tiny_moe() {
  TransformerConfig c;
  c.architecture = "Qwen3MoeForCausalLM";
  c.vocab_size = 53;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = false;
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 24;
  c.norm_topk_prob = true;
  c.mlp_only_layers = {1};
  return c;
}

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> n;
  for (auto& [k, t] : m.named_parameters()) n.push_back(k);
  return n;
}
bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

const char* kQwen3MoeJson = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 151936,
  "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 48, "num_attention_heads": 32,
  "num_key_value_heads": 4, "head_dim": 128, "max_position_embeddings": 40960, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "rope_scaling": null, "attention_bias": false, "tie_word_embeddings": false,
  "use_sliding_window": false, "sliding_window": null, "max_window_layers": 48, "hidden_act": "silu",
  "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768, "norm_topk_prob": true,
  "decoder_sparse_step": 1, "mlp_only_layers": [], "router_aux_loss_coef": 0.001,
  "output_router_logits": false, "torch_dtype": "bfloat16"})";

}  // namespace

TEST(QwenConfig, Qwen3MoeFieldsReadWriteAndDefaults) {
  TransformerConfig c = TransformerConfig::from_json(kQwen3MoeJson);  // Qwen3-30B-A3B's values
  EXPECT_EQ(c.num_experts, 128);
  EXPECT_EQ(c.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe_intermediate_size, 768);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.resolved_head_dim(), 128);
  EXPECT_TRUE(c.has_qk_norm());
  EXPECT_DOUBLE_EQ(c.router_aux_loss_coef, 0.001);
  for (int64_t l = 0; l < 48; ++l) EXPECT_TRUE(c.is_moe_layer(l));
  TransformerConfig d = TransformerConfig::from_json(c.to_json());
  EXPECT_EQ(d.to_json(), c.to_json());
  EXPECT_NE(c.to_json().find("\"model_type\": \"qwen3_moe\""), std::string::npos);
  EXPECT_EQ(c.to_json().find("scoring_func"), std::string::npos);  // extensions only when used

  // absent MoE fields take HF Qwen3MoeConfig's defaults
  TransformerConfig e = TransformerConfig::from_json(R"({"architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 10,
      "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4})");
  EXPECT_EQ(e.num_experts, 128);
  EXPECT_EQ(e.num_experts_per_tok, 8);
  EXPECT_EQ(e.moe_intermediate_size, 768);
  EXPECT_FALSE(e.norm_topk_prob);
  EXPECT_EQ(e.decoder_sparse_step, 1);

  // lmlab's extensions round-trip
  TransformerConfig x = tiny_moe();
  x.scoring_func = "sigmoid";
  x.n_shared_experts = 1;
  x.routed_scaling_factor = 2.5;
  x.decoder_sparse_step = 2;
  TransformerConfig y = TransformerConfig::from_json(x.to_json());
  EXPECT_EQ(y.scoring_func, "sigmoid");
  EXPECT_EQ(y.n_shared_experts, 1);
  EXPECT_DOUBLE_EQ(y.routed_scaling_factor, 2.5);
  EXPECT_EQ(y.mlp_only_layers, std::vector<int64_t>{1});
  EXPECT_EQ(y.decoder_sparse_step, 2);
}

TEST(QwenConfig, SparseLayerSchedule) {
  TransformerConfig c = tiny_moe();
  c.num_hidden_layers = 6;
  c.decoder_sparse_step = 2;
  c.mlp_only_layers = {3};
  std::string pattern;
  for (int64_t l = 0; l < 6; ++l) pattern += c.is_moe_layer(l) ? 'M' : 'D';
  EXPECT_EQ(pattern, "DMDDDM");  // (i + 1) % 2 == 0 except layer 3
  c.num_experts = 0;
  EXPECT_FALSE(c.is_moe_layer(1));
}

TEST(QwenConfig, ValidationNamesTheField) {
  auto bad = [](auto edit, const std::string& msg) {
    TransformerConfig c = tiny_moe();
    edit(c);
    expect_error<ConfigError>([&] { c.validate(); }, msg);
  };
  bad([](TransformerConfig& c) { c.num_experts_per_tok = 5; }, "num_experts_per_tok (5) must not exceed num_experts (4)");
  bad([](TransformerConfig& c) { c.num_experts_per_tok = 0; }, "num_experts_per_tok must be positive");
  bad([](TransformerConfig& c) { c.moe_intermediate_size = -1; }, "moe_intermediate_size must be positive");
  bad([](TransformerConfig& c) { c.decoder_sparse_step = 0; }, "decoder_sparse_step must be positive");
  bad([](TransformerConfig& c) { c.mlp_only_layers = {3}; }, "mlp_only_layers entry 3 is not a layer index in [0, 3)");
  bad([](TransformerConfig& c) { c.scoring_func = "relu"; }, "scoring_func 'relu' is not supported");
  bad([](TransformerConfig& c) { c.num_experts = -2; }, "num_experts must be >= 0");
  bad([](TransformerConfig& c) { c.intermediate_size = 0; }, "intermediate_size must be positive");  // layer 1 dense
  bad([](TransformerConfig& c) { c.architecture = "Qwen3ForCausalLM"; }, "num_experts = 4 needs architecture Qwen3MoeForCausalLM");
  // all-sparse models need no dense width
  TransformerConfig ok = tiny_moe();
  ok.mlp_only_layers = {};
  ok.intermediate_size = 0;
  EXPECT_NO_THROW(ok.validate());

  expect_error<ConfigError>(
      [] {
        TransformerConfig::from_json(R"({"architectures": ["Qwen3MoeForCausalLM"], "vocab_size": 10, "hidden_size": 32,
          "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4, "num_experts": 4,
          "num_experts_per_tok": 6})");
      },
      "num_experts_per_tok (6) must not exceed num_experts (4)");
  expect_error<ConfigError>(
      [] {
        TransformerConfig::from_json(R"({"architectures": ["GPTNeoXForCausalLM"], "vocab_size": 10, "hidden_size": 32,
          "intermediate_size": 8, "num_hidden_layers": 2, "num_attention_heads": 4})");
      },
      "architecture 'GPTNeoXForCausalLM' is not supported (supported: LlamaForCausalLM, MistralForCausalLM, "
      "Qwen2ForCausalLM, Qwen3ForCausalLM, Qwen3MoeForCausalLM, KimiLinearForCausalLM)");
  TransformerConfig u = tiny_moe();
  u.architecture = "Phi3ForCausalLM";
  expect_error<ConfigError>([&] { u.validate(); }, "architecture 'Phi3ForCausalLM' is not supported");
  expect_error<ConfigError>(
      [] {
        TransformerConfig::from_json(R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 10, "hidden_size": 32,
          "intermediate_size": 8, "num_hidden_layers": 4, "num_attention_heads": 4, "use_sliding_window": true,
          "sliding_window": 16, "max_window_layers": 2})");
      },
      "max_window_layers = 2 mixes full and sliding-window layers");
}

TEST(QwenConfig, Qwen2AndQwen3AttentionParameters) {
  TransformerConfig q2 = TransformerConfig::from_json(R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 10,
      "hidden_size": 32, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4,
      "num_key_value_heads": 2, "tie_word_embeddings": true})");
  EXPECT_TRUE(q2.attention_bias);
  EXPECT_EQ(q2.to_json().find("attention_bias"), std::string::npos);  // implied, as in HF's config.json
  auto n2 = names_of(Transformer(q2, 1));
  EXPECT_TRUE(has(n2, "model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(has(n2, "model.layers.0.self_attn.v_proj.bias"));
  EXPECT_FALSE(has(n2, "model.layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(has(n2, "model.layers.0.self_attn.q_norm.weight"));

  TransformerConfig q3 = q2;
  q3.architecture = "Qwen3ForCausalLM";
  q3.attention_bias = false;
  q3.head_dim = 16;  // != 32 / 4
  auto n3 = names_of(Transformer(q3, 1));
  EXPECT_TRUE(has(n3, "model.layers.0.self_attn.q_norm.weight"));
  EXPECT_TRUE(has(n3, "model.layers.0.self_attn.k_norm.weight"));
  EXPECT_FALSE(has(n3, "model.layers.0.self_attn.q_proj.bias"));
  Transformer m3(q3, 1);
  EXPECT_EQ(m3.model->layers[0]->self_attn->q_proj->weight.size(0), 4 * 16);
  EXPECT_EQ(m3.model->layers[0]->self_attn->q_norm->weight.size(0), 16);
  q3.attention_bias = true;  // Qwen3 / Llama: o_proj gets a bias too
  EXPECT_TRUE(has(names_of(Transformer(q3, 1)), "model.layers.0.self_attn.o_proj.bias"));
  EXPECT_NE(q3.to_json().find("\"model_type\": \"qwen3\""), std::string::npos);
}

TEST(QwenConfig, YarnRopeScalingFollowsHf) {
  const std::string base = R"({"architectures": ["Qwen3ForCausalLM"], "vocab_size": 10, "hidden_size": 32,
      "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 4096, )";
  // original context falls back to max_position_embeddings; truncate defaults to true
  TransformerConfig a = TransformerConfig::from_json(base + R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0}})");
  EXPECT_EQ(a.rope_scaling.original_max_position, 4096);
  EXPECT_TRUE(a.rope_scaling.truncate);
  TransformerConfig b = TransformerConfig::from_json(
      base + R"("rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
      "truncate": false, "mscale": 1.0, "mscale_all_dim": 0.5}})");
  EXPECT_EQ(b.rope_scaling.original_max_position, 1024);
  EXPECT_FALSE(b.rope_scaling.truncate);
  double l4 = std::log(4.0);
  EXPECT_NEAR(b.rope_scaling.attention_factor, (0.1 * l4 + 1) / (0.05 * l4 + 1), 1e-12);
  TransformerConfig c = TransformerConfig::from_json(b.to_json());
  EXPECT_FALSE(c.rope_scaling.truncate);
  EXPECT_NEAR(c.rope_scaling.attention_factor, b.rope_scaling.attention_factor, 1e-12);
  // truncate changes the schedule (the ramp's ends are no longer whole pair indices)
  RopeConfig r1, r2;
  r1.head_dim = r2.head_dim = 16;
  r1.scaling = a.rope_scaling;
  r1.scaling.original_max_position = 64;  // ramp end 2.02: ceil 3 when truncating
  r2.scaling = r1.scaling;
  r2.scaling.truncate = false;
  CheckResult diff = compare("truncate", rope_inv_freq(r1), rope_inv_freq(r2), 1e-9, 0);
  EXPECT_FALSE(diff.ok);
}

TEST(Qwen3Moe, ParameterNamesAndSparseLayers) {
  Transformer m(tiny_moe(), 3);
  auto n = names_of(m);
  EXPECT_TRUE(has(n, "model.layers.0.mlp.gate.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.mlp.experts.3.down_proj.weight"));
  EXPECT_TRUE(has(n, "model.layers.2.mlp.experts.0.gate_proj.weight"));
  EXPECT_TRUE(has(n, "model.layers.1.mlp.up_proj.weight"));  // mlp_only_layers: dense
  EXPECT_FALSE(has(n, "model.layers.1.mlp.gate.weight"));
  EXPECT_TRUE(has(n, "model.layers.0.self_attn.q_norm.weight"));
  ASSERT_EQ(m.moe_layers().size(), 2u);
  EXPECT_EQ(m.moe_layers()[1]->layer_index, 2);
  EXPECT_EQ(m.model->layers[0]->moe->experts[0]->down_proj->weight.size(1), 24);
  EXPECT_EQ(m.model->layers[1]->mlp->down_proj->weight.size(1), 48);
}

TEST(Qwen3Moe, CachedDecodingEqualsFullForward) {
  Transformer m(tiny_moe(), 5);
  NoGrad ng;
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{3, 9, 27, 1, 44, 8, 15, 2, 30, 5, 19, 7}, {2, 6});
  Tensor full = m.forward(ids);  // [2, 6, V]
  CacheSet cache = m.new_cache();
  Tensor first = m.forward(ids.narrow(1, 0, 4), &cache);
  std::vector<Tensor> steps = {first};
  for (int64_t t = 4; t < 6; ++t) steps.push_back(m.forward(ids.narrow(1, t, 1).contiguous(), &cache));
  Tensor inc = concat(steps, 1);
  CheckResult r = compare("cached", inc, full, 1e-5, 1e-4);
  EXPECT_TRUE(r.ok) << r.message;
}

// Training smoke test: a tiny Qwen3-MoE memorises one batch with AdamW on lm loss + alpha * L_aux;
// the loss falls, the router and every expert that got tokens learn, and no expert dies.
TEST(Qwen3Moe, TrainsWithAdamWAndBalanceLoss) {
  TransformerConfig cfg = tiny_moe();
  Transformer m(cfg, 11);
  Generator gen(12);
  std::vector<int64_t> v(2 * 16);
  for (auto& x : v) x = gen.randint(0, cfg.vocab_size);
  Tensor ids = Tensor::from_vector(v, {2, 16});
  Tensor inputs = ids.narrow(1, 0, 15).contiguous(), targets = ids.narrow(1, 1, 15).contiguous();
  AdamWOptions o;
  o.lr = 3e-3;
  o.weight_decay = 0.0;
  AdamW opt(m.parameters(), o);
  const double alpha = 1e-2;
  std::vector<double> lm;
  std::vector<int64_t> load(size_t(cfg.num_experts), 0);
  Tensor router0 = m.moe_layers()[0]->gate->weight.clone();
  for (int step = 0; step < 12; ++step) {
    RouterStatsCollector rs;
    Tensor loss = causal_lm_loss(m, inputs, targets);
    ASSERT_EQ(rs.stats().size(), 2u);
    Tensor aux = rs.load_balancing_loss();
    EXPECT_GE(aux.item(), 2.0 - 1e-6);  // two layers, each >= 1
    lm.push_back(loss.item());
    add(loss, mul(aux, alpha)).backward();
    opt.step();
    opt.zero_grad();
    for (const auto& s : rs.stats())
      for (size_t e = 0; e < load.size(); ++e) load[e] += s.counts[e];
  }
  EXPECT_LT(lm.back(), lm.front() - 0.5) << "loss " << lm.front() << " -> " << lm.back();
  if (std::getenv("LMLAB_TEST_VERBOSE"))
    std::printf("  lm loss %.4f -> %.4f; expert loads %ld %ld %ld %ld\n", lm.front(), lm.back(), long(load[0]),
                long(load[1]), long(load[2]), long(load[3]));
  for (size_t i = 1; i < lm.size(); ++i) EXPECT_TRUE(std::isfinite(lm[i]));
  for (size_t e = 0; e < load.size(); ++e) EXPECT_GT(load[e], 0) << "expert " << e << " never used";
  EXPECT_GT(max(abs(sub(m.moe_layers()[0]->gate->weight, router0))).item(), 0.0);  // the router learned
}
