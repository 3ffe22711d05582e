// The Llama-style transformer: HF config round trip and validation, parameter names, cached
// decoding equals the full forward, cache fork/truncate, and an overfit-one-batch smoke test.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"
#include "lmlab/models/transformer.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/train/optim.h"
#include "tests/test_util.h"

using namespace lmlab;

namespace {
TransformerConfig tiny() {
  TransformerConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = false;
  return c;
}
Tensor ids_of(std::vector<int64_t> v, int64_t B) {
  int64_t T = int64_t(v.size()) / B;
  return Tensor::from_vector(v, {B, T});
}
}  // namespace

TEST(TransformerConfig, JsonRoundTripAndValidation) {
  TransformerConfig c = tiny();
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8;
  TransformerConfig d = TransformerConfig::from_json(c.to_json());
  EXPECT_EQ(d.hidden_size, 32);
  EXPECT_EQ(d.num_key_value_heads, 2);
  EXPECT_EQ(d.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_EQ(d.rope_scaling.factor, 8);
  EXPECT_FALSE(d.tie_word_embeddings);
  EXPECT_THROW(TransformerConfig::from_json(R"({"vocab_size": 10, "hidden_size": 30, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 4})"), ConfigError);  // 30 % 4
  EXPECT_THROW(TransformerConfig::from_json(R"({"vocab_size": -1, "hidden_size": 32, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 4})"), ConfigError);
  EXPECT_THROW(TransformerConfig::from_json(R"({"vocab_size": 10, "hidden_size": 32, "intermediate_size": 8,
      "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3})"), ConfigError);
  EXPECT_THROW(TransformerConfig::from_json(R"({"hidden_size": 32})"), ConfigError);  // missing fields
  EXPECT_THROW(TransformerConfig::from_json("{not json"), FormatError);
  EXPECT_THROW(TransformerConfig::from_json(R"({"architectures": ["BertModel"], "vocab_size": 10})"), ConfigError);
  try {
    TransformerConfig::from_json(R"({"vocab_size": 10, "hidden_size": 32, "intermediate_size": 8,
      "num_hidden_layers": "two", "num_attention_heads": 4})");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("num_hidden_layers"), std::string::npos);
  }
}

TEST(Transformer, HuggingFaceParameterNames) {
  Transformer m(tiny(), 1);
  auto names = m.named_parameters();
  std::vector<std::string> n;
  for (auto& [k, v] : names) n.push_back(k);
  EXPECT_EQ(n.front(), "model.embed_tokens.weight");
  EXPECT_NE(std::find(n.begin(), n.end(), "model.layers.1.self_attn.k_proj.weight"), n.end());
  EXPECT_NE(std::find(n.begin(), n.end(), "model.layers.0.mlp.down_proj.weight"), n.end());
  EXPECT_NE(std::find(n.begin(), n.end(), "model.layers.0.post_attention_layernorm.weight"), n.end());
  EXPECT_EQ(n.back(), "lm_head.weight");
  TransformerConfig t = tiny();
  t.tie_word_embeddings = true;
  Transformer tied(t, 1);
  EXPECT_EQ(tied.named_parameters().back().first, "model.norm.weight");
  EXPECT_EQ(tied.num_parameters() + 61 * 32, m.num_parameters());
  auto kv = m.named_parameters()[2];  // layer 0 q_proj
  EXPECT_EQ(kv.first, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(kv.second.shape(), (Shape{32, 32}));
}

TEST(Transformer, CachedDecodingMatchesFullForward) {
  Transformer m(tiny(), 2);
  NoGrad ng;
  std::vector<int64_t> seq = {3, 17, 42, 5, 9, 60, 1, 33, 21, 8};
  Tensor full = m.forward(ids_of(seq, 1));  // [1, 10, V]
  CacheSet cache = m.new_cache();
  // prefill 4, then decode one by one
  Tensor pre = m.forward(ids_of({3, 17, 42, 5}, 1), &cache);
  auto r0 = compare("prefill", pre, full.narrow(1, 0, 4), 1e-5, 1e-4);
  EXPECT_TRUE(r0.ok) << r0.message;
  for (int t = 4; t < 10; ++t) {
    Tensor step = m.forward(ids_of({seq[size_t(t)]}, 1), &cache);
    auto r = compare("decode step " + std::to_string(t), step, full.narrow(1, t, 1), 1e-5, 1e-4);
    EXPECT_TRUE(r.ok) << r.message;
  }
  EXPECT_EQ(cache.length(), 10);
  EXPECT_GT(cache.bytes(), 0u);
  // bytes per token measured from the cache: 2 layers x (K and V) x Hkv 2 x D 8 x 4 bytes
  EXPECT_EQ(cache.bytes(), size_t(10 * 2 * 2 * 2 * 8 * 4));
}

TEST(Transformer, ForkAndTruncate) {
  Transformer m(tiny(), 3);
  NoGrad ng;
  CacheSet a = m.new_cache();
  m.forward(ids_of({1, 2, 3, 4}, 1), &a);
  CacheSet b = a.fork();
  Tensor la = m.forward(ids_of({5}, 1), &a);
  Tensor lb = m.forward(ids_of({6}, 1), &b);  // b must not see a's token 5
  Tensor ref_b = m.forward(ids_of({1, 2, 3, 4, 6}, 1)).narrow(1, 4, 1);
  auto r = compare("fork", lb, ref_b, 1e-5, 1e-4);
  EXPECT_TRUE(r.ok) << r.message;
  a.truncate(2);
  Tensor lt = m.forward(ids_of({9}, 1), &a);
  Tensor ref_t = m.forward(ids_of({1, 2, 9}, 1)).narrow(1, 2, 1);
  auto r2 = compare("truncate", lt, ref_t, 1e-5, 1e-4);
  EXPECT_TRUE(r2.ok) << r2.message;
  (void)la;
}

TEST(Transformer, PromptLongerThanContextIsAnError) {
  Transformer m(tiny(), 4);
  NoGrad ng;
  std::vector<int64_t> v(65, 1);
  EXPECT_THROW(m.forward(ids_of(v, 1)), ValueError);
}

TEST(Transformer, OverfitsOneBatch) {
  Transformer m(tiny(), 5);
  AdamWOptions o;
  o.lr = 3e-3;
  o.weight_decay = 0.0;
  AdamW opt(m.parameters(), o);
  Tensor in = ids_of({1, 5, 9, 13, 17, 21, 25, 29, 2, 6, 10, 14, 18, 22, 26, 30}, 2);
  Tensor tg = ids_of({5, 9, 13, 17, 21, 25, 29, 33, 6, 10, 14, 18, 22, 26, 30, 34}, 2);
  double first = 0, last = 0;
  for (int i = 0; i < 150; ++i) {
    Tensor loss = causal_lm_loss(m, in, tg);
    if (i == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
  EXPECT_NEAR(first, std::log(61.0), 0.3);
  EXPECT_LT(last, 0.05);
}

// Quantized tables (GGUF embeddings): the layer looks rows up in the stored type.
TEST(Embedding, QuantizedTable) {
  Generator g(27);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{3, 0, 17}, {1, 3});
  QMatrix q = QMatrix::quantize(Tensor::randn({18, 64}, g), GgmlType::Q8_0);
  Embedding e(18, 64, g);
  lmlab::test::expect_error<ShapeError>(
      [&] { e.set_quantized(QMatrix::quantize(Tensor::randn({18, 32}, g), GgmlType::Q8_0)); },
      "[Embedding] quantized table is [18, 32], the layer is [18, 64]");
  e.set_quantized(q);
  EXPECT_TRUE(e.quantized());
  EXPECT_TRUE(e.named_parameters().empty());  // the f32 parameter is gone
  EXPECT_EQ(e.forward(ids).to_vector<float>(), qembedding(q, ids).to_vector<float>());
}
