// Hybrid layer schedules (Kimi Linear: KDA + MLA, 3:1): pattern and Kimi config.json parsing, config errors,
// per-layer cache kinds, prefill + decode == full forward, cache bytes per token (3:1 vs all-MLA vs all
// full attention), generation (single, batched with left padding, fork), truncate rules, training.
#include <gtest/gtest.h>

#include <set>

#include <cmath>

#include "../test_util.h"
#include "lmlab/infer/generate.h"
#include "lmlab/infer/model_loader.h"
#include "lmlab/lmlab.h"
#include "lmlab/models/transformer.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/train/optim.h"

using namespace lmlab;
using lmlab::test::expect_error;

namespace {
TransformerConfig hybrid(const std::string& pattern = "KKKM") {
  TransformerConfig c;
  c.vocab_size = 53;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = false;
  c.layer_pattern = pattern;
  c.linear_num_heads = 2;
  c.linear_head_dim = 16;
  c.kv_lora_rank = 16;
  c.qk_nope_head_dim = 8;
  c.qk_rope_head_dim = 0;  // NoPE, as in Kimi Linear
  c.v_head_dim = 8;
  return c;
}
Tensor ids_of(std::vector<int64_t> v, int64_t B = 1) {
  int64_t T = int64_t(v.size()) / B;
  return Tensor::from_vector(v, {B, T});
}
bool has(const Module& m, const std::string& name) {
  for (const auto& [n, t] : m.named_parameters())
    if (n == name) return true;
  return false;
}
// A Kimi-Linear-48B-style config.json, truncated to 8 layers and shrunk.
const char* kKimiJson = R"({
  "architectures": ["KimiLinearForCausalLM"], "model_type": "kimi_linear",
  "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 8,
  "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 8, "model_max_length": 128,
  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false, "hidden_act": "silu",
  "linear_attn_config": {"kda_layers": [1, 2, 3, 5, 6, 7], "full_attn_layers": [4, 8], "num_heads": 2,
                         "head_dim": 16, "short_conv_kernel_size": 4},
  "num_experts": 4, "num_experts_per_token": 2, "moe_intermediate_size": 16, "num_shared_experts": 1,
  "moe_router_activation_func": "sigmoid", "moe_renormalize": true, "routed_scaling_factor": 2.446,
  "first_k_dense_replace": 1, "moe_layer_freq": 1, "num_expert_group": 1,
  "kv_lora_rank": 16, "q_lora_rank": null, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8,
  "mla_use_nope": true
})";
}  // namespace

TEST(HybridConfig, PatternRepeatsAndSelectsMixers) {
  TransformerConfig c = hybrid("KKKM");
  c.num_hidden_layers = 8;
  std::string kinds;
  for (int64_t i = 0; i < 8; ++i) kinds += char(c.mixer_kind(i));
  EXPECT_EQ(kinds, "KKKMKKKM");
  Transformer m(c, 1);
  EXPECT_TRUE(has(m, "model.layers.0.self_attn.q_conv1d.weight"));
  EXPECT_TRUE(has(m, "model.layers.0.self_attn.A_log"));
  EXPECT_TRUE(has(m, "model.layers.3.self_attn.kv_a_proj_with_mqa.weight"));
  EXPECT_TRUE(has(m, "model.layers.3.self_attn.kv_b_proj.weight"));
  EXPECT_FALSE(has(m, "model.layers.3.self_attn.A_log"));
  EXPECT_TRUE(m.model->layers[0]->linear_attn && !m.model->layers[0]->self_attn);
  EXPECT_TRUE(m.model->layers[3]->mla);
  TransformerConfig all = hybrid("AGDLSM");
  all.num_hidden_layers = 6;
  all.sliding_window = 8;
  Transformer m2(all, 2);
  EXPECT_EQ(m2.model->layers[1]->linear_attn->cfg.mixer, LinearMixer::GDN);
  EXPECT_EQ(m2.model->layers[2]->linear_attn->cfg.mixer, LinearMixer::DeltaNet);
  EXPECT_EQ(m2.model->layers[3]->linear_attn->cfg.mixer, LinearMixer::GLA);
  EXPECT_EQ(m2.model->layers[4]->self_attn->cfg.window, 8);
  EXPECT_EQ(m2.model->layers[0]->self_attn->cfg.window, 0);
}

TEST(HybridConfig, ErrorsNameTheField) {
  TransformerConfig c = hybrid("KKXM");
  expect_error<ConfigError>([&] { c.validate(); }, "layer_pattern");
  c = hybrid("KKKM");
  c.linear_head_dim = 0;
  c.linear_num_heads = 5;  // 32 % 5 != 0
  expect_error<ConfigError>([&] { c.validate(); }, "linear_attn_config.num_heads");
  c = hybrid("KKKM");
  c.kv_lora_rank = 0;
  expect_error<ConfigError>([&] { c.validate(); }, "kv_lora_rank");
  c = hybrid("KS");
  expect_error<ConfigError>([&] { c.validate(); }, "sliding_window");
  c = hybrid("KKKM");
  c.architecture = "KimiLinearForCausalLM";
  c.num_experts = 4;
  c.num_experts_per_tok = 5;
  c.moe_intermediate_size = 8;
  expect_error<ConfigError>([&] { c.validate(); }, "num_experts_per_tok");
  // Kimi lists: a layer in neither list, or in both
  std::string j = kKimiJson;
  std::string missing = j;
  missing.replace(missing.find("[4, 8]"), 6, "[4]");
  expect_error<ConfigError>([&] { TransformerConfig::from_json(missing); }, "layer 8 is in neither");
  std::string twice = j;
  twice.replace(twice.find("[4, 8]"), 6, "[3, 4, 8]");
  expect_error<ConfigError>([&] { TransformerConfig::from_json(twice); }, "listed twice");
}

TEST(HybridConfig, KimiLinearConfigJsonLoadsAndRoundTrips) {
  TransformerConfig c = TransformerConfig::from_json(kKimiJson);
  EXPECT_EQ(c.architecture, "KimiLinearForCausalLM");
  EXPECT_EQ(c.layer_pattern, "KKKMKKKM");
  EXPECT_EQ(c.linear_num_heads, 2);
  EXPECT_EQ(c.linear_head_dim, 16);
  EXPECT_EQ(c.kv_lora_rank, 16);
  EXPECT_EQ(c.qk_rope_head_dim, 4);
  EXPECT_TRUE(c.mla_use_nope);
  EXPECT_EQ(c.max_position_embeddings, 128);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.scoring_func, "sigmoid");
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_FALSE(c.is_moe_layer(0));  // first_k_dense_replace = 1
  EXPECT_TRUE(c.is_moe_layer(1));
  TransformerConfig r = TransformerConfig::from_json(c.to_json());
  EXPECT_EQ(r.layer_pattern, c.layer_pattern);
  EXPECT_EQ(r.first_k_dense_replace, 1);
  EXPECT_EQ(r.kv_lora_rank, 16);
  EXPECT_EQ(r.routed_scaling_factor, c.routed_scaling_factor);
  EXPECT_EQ(r.num_experts, 4);
  EXPECT_TRUE(r.mla_use_nope);
  Transformer m(c, 3);  // builds: KDA + MLA + sigmoid MoE with a shared expert
  EXPECT_TRUE(has(m, "model.layers.1.block_sparse_moe.shared_experts.up_proj.weight"));
  EXPECT_TRUE(has(m, "model.layers.0.mlp.up_proj.weight"));
  // the lmlab pattern survives a round trip for any architecture, with mixers Kimi's lists cannot express
  TransformerConfig g = hybrid("GDLA");
  TransformerConfig g2 = TransformerConfig::from_json(g.to_json());
  EXPECT_EQ(g2.layer_pattern, "GDLA");
  EXPECT_EQ(g2.linear_num_heads, 2);
}

TEST(HybridModel, PrefillThenDecodeEqualsFullForward) {
  for (std::string pattern : {"KKKM", "GDLM", "KAKS"}) {
    TransformerConfig c = hybrid(pattern);
    c.sliding_window = 4;
    if (pattern == "GDLM") c.qk_rope_head_dim = 4;  // MLA with RoPE as well
    Transformer m(c, 4);
    NoGrad ng;
    std::vector<int64_t> seq = {3, 17, 42, 5, 9, 50, 1, 33, 21, 8, 12};
    Tensor full = m.forward(ids_of(seq));
    CacheSet cache = m.new_cache();
    Tensor pre = m.forward(ids_of({3, 17, 42, 5, 9}), &cache);
    auto r0 = compare(pattern + " prefill", pre, full.narrow(1, 0, 5), 1e-4, 1e-4);
    EXPECT_TRUE(r0.ok) << r0.message;
    for (size_t t = 5; t < seq.size(); ++t) {
      Tensor step = m.forward(ids_of({seq[t]}), &cache);
      auto r = compare(pattern + " decode " + std::to_string(t), step, full.narrow(1, int64_t(t), 1), 1e-4, 1e-4);
      EXPECT_TRUE(r.ok) << r.message;
    }
    EXPECT_EQ(cache.length(), int64_t(seq.size()));
  }
}

TEST(HybridModel, CacheBytesPerTokenByLayerKind) {
  // 4 layers; the same T positions cached in: 3:1 hybrid, all MLA, all full attention.
  auto measure = [](const std::string& pattern, int64_t T) {
    Transformer m(hybrid(pattern), 5);
    NoGrad ng;
    CacheSet cache = m.new_cache();
    std::vector<int64_t> ids(size_t(T), 7);
    m.forward(ids_of(ids), &cache);
    return cache;
  };
  int64_t T = 20;
  CacheSet h = measure("KKKM", T), mla = measure("M", T), full = measure("A", T);
  size_t latent = size_t(16 + 0) * 4;            // kv_lora_rank + rope dim, f32, per token per MLA layer
  size_t kv = size_t(2 * 4 * 8) * 4;             // K and V: 4 kv heads x head_dim 8
  size_t kda = size_t(2 * 16 * 16 + 3 * 3 * 32) * 4;  // state + 3 conv tails, per KDA layer
  EXPECT_EQ(mla.bytes(), 4 * latent * size_t(T));
  EXPECT_EQ(full.bytes(), 4 * kv * size_t(T));
  EXPECT_EQ(h.bytes(), latent * size_t(T) + 3 * kda);
  // per layer kind
  EXPECT_EQ(h.peek(0)->bytes(), kda);
  EXPECT_EQ(h.peek(3)->bytes(), latent * size_t(T));
  EXPECT_NE(dynamic_cast<const RecurrentCache*>(h.peek(1)), nullptr);
  EXPECT_NE(dynamic_cast<const MLACache*>(h.peek(3)), nullptr);
  // growth per token: the hybrid's is exactly 1/4 of all-MLA (only 1 layer in 4 grows)
  CacheSet h2 = measure("KKKM", T + 8), mla2 = measure("M", T + 8);
  EXPECT_EQ(4 * (h2.bytes() - h.bytes()), mla2.bytes() - mla.bytes());
}

TEST(HybridModel, GenerateGreedyMatchesRecomputationAndBatches) {
  TransformerConfig c = hybrid("KKKM");
  Transformer m(c, 6);
  GenerateOptions opt;
  opt.max_new_tokens = 6;
  opt.sampler.temperature = 0;
  std::vector<int64_t> prompt = {4, 9, 16, 25};
  InferState st(m);
  std::vector<int64_t> out = generate(m, st, prompt, opt);
  ASSERT_EQ(out.size(), 6u);
  // greedy reference without any cache: argmax of a full forward each step
  std::vector<int64_t> seq = prompt;
  {
    NoGrad ng;
    for (int i = 0; i < 6; ++i) {
      Tensor l = m.forward(ids_of(seq)).select(0, 0).select(0, int64_t(seq.size()) - 1);
      std::vector<float> v = l.contiguous().to_vector<float>();
      seq.push_back(int64_t(std::max_element(v.begin(), v.end()) - v.begin()));
      EXPECT_EQ(out[size_t(i)], seq.back()) << "step " << i;
    }
  }
  // batched with left padding: each row equals its own single generation
  std::vector<std::vector<int64_t>> prompts = {{4, 9, 16, 25}, {7, 3}};
  auto rows = generate_batch(m, prompts, opt);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], out);
  InferState s2(m);
  EXPECT_EQ(rows[1], generate(m, s2, prompts[1], opt));
}

TEST(HybridModel, ForkSharesAndTruncateRefusesToRewindRecurrentLayers) {
  Transformer m(hybrid("KKKM"), 7);
  NoGrad ng;
  CacheSet a = m.new_cache();
  m.forward(ids_of({1, 2, 3, 4}), &a);
  CacheSet b = a.fork();
  m.forward(ids_of({5}), &a);
  Tensor lb = m.forward(ids_of({6}), &b);
  auto r = compare("fork", lb, m.forward(ids_of({1, 2, 3, 4, 6})).narrow(1, 4, 1), 1e-4, 1e-4);
  EXPECT_TRUE(r.ok) << r.message;
  expect_error<ValueError>([&] { a.truncate(2); }, "kda layer's recurrent state");
  a.truncate(0);
  EXPECT_EQ(a.length(), 0);
}

TEST(HybridModel, TrainsWithLossDecreasing) {
  TransformerConfig c = hybrid("KKKM");
  c.architecture = "KimiLinearForCausalLM";
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 16;
  c.first_k_dense_replace = 1;
  Transformer m(c, 8);
  AdamWOptions o;
  o.lr = 3e-3;
  o.weight_decay = 0.0;
  AdamW opt(m.parameters(), o);
  Tensor in = ids_of({1, 5, 9, 13, 17, 21, 25, 29, 2, 6, 10, 14, 18, 22, 26, 30}, 2);
  Tensor tg = ids_of({5, 9, 13, 17, 21, 25, 29, 33, 6, 10, 14, 18, 22, 26, 30, 34}, 2);
  double first = 0, last = 0;
  for (int i = 0; i < 40; ++i) {
    Tensor loss = causal_lm_loss(m, in, tg);
    if (i == 0) first = loss.item();
    last = loss.item();
    ASSERT_TRUE(std::isfinite(last));
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
  EXPECT_NEAR(first, std::log(53.0), 0.3);
  EXPECT_LT(last, 0.5 * first);
}

// A Kimi-Linear checkpoint's tensor names: the sparse FFN is block_sparse_moe with Mixtral-style
// expert projections (w1 gate, w3 up, w2 down), the router and its correction bias under gate, shared
// experts as a Llama MLP; the first_k_dense_replace layers keep a dense "mlp".
TEST(HybridConfig, KimiLinearTensorNames) {
  TransformerConfig c = TransformerConfig::from_json(kKimiJson);
  Transformer m(c, 3);
  std::set<std::string> names;
  for (const auto& [n, t] : m.state_dict()) names.insert(n);
  for (const char* want : {"model.layers.0.mlp.gate_proj.weight", "model.layers.1.block_sparse_moe.gate.weight",
                           "model.layers.1.block_sparse_moe.gate.e_score_correction_bias",
                           "model.layers.1.block_sparse_moe.experts.3.w1.weight",
                           "model.layers.1.block_sparse_moe.experts.3.w2.weight",
                           "model.layers.1.block_sparse_moe.experts.3.w3.weight",
                           "model.layers.1.block_sparse_moe.shared_experts.down_proj.weight"})
    EXPECT_TRUE(names.count(want)) << want;
  for (const auto& n : names) EXPECT_EQ(n.find("mlp.experts"), std::string::npos) << n;
  EXPECT_EQ(m.model->layers[1]->moe->experts[3]->down_proj->weight.shape(), (Shape{32, 16}));  // w2: [C, I]
}

// A Kimi-Linear HF checkpoint as released (bf16) loads for inference in its stored precision: every
// Linear runs bf16, including MLA's kv_b_proj (whose matrix the absorbed decode folds into the
// queries), and prefill + cached decode give the logits of the same weights widened to f32.
TEST(HybridModel, Bf16KimiCheckpointRunsInStoredPrecision) {
  lmlab::test::TempDir tmp("kimi_bf16");
  TransformerConfig c = TransformerConfig::from_json(kKimiJson);
  {
    Transformer m(c, 3);
    std::vector<std::pair<std::string, Tensor>> sd;
    for (auto& [n, p] : m.named_parameters()) sd.emplace_back(n, p.to(DType::BF16));
    for (auto& [n, b] : m.named_buffers()) sd.emplace_back(n, b);
    write_file_atomic(tmp / "config.json", c.to_json());
    save_safetensors(tmp / "model.safetensors", sd);
  }
  LoadedModel kept = load_model(tmp.path.string());
  ModelLoadOptions wide;
  wide.keep_stored_precision = false;
  LoadedModel f32 = load_model(tmp.path.string(), wide);
  EXPECT_GT(kept.half_precision_matrices, 0);
  NoGrad ng;
  Tensor ids = ids_of({5, 9, 1, 33, 2, 7});
  auto full = [&](const LoadedModel& lm) { return lm.model->forward(ids).to_vector<float>(); };
  auto a = full(kept), b = full(f32);
  const double mx = lmlab::test::max_abs(b);
  EXPECT_LE(lmlab::test::max_abs_diff(a, b), 0.02 * mx);
  // Cached decoding (the absorbed MLA path) one token at a time gives the same last logits.
  CacheSet cache = kept.model->new_cache();
  Tensor last;
  for (int64_t t = 0; t < ids.size(1); ++t) last = kept.model->forward(ids.narrow(1, t, 1), &cache);
  auto l = last.to_vector<float>();
  const size_t V = size_t(c.vocab_size);
  for (size_t v = 0; v < V; ++v) EXPECT_NEAR(l[v], a[a.size() - V + v], 1e-2 * (1 + mx)) << v;
}
