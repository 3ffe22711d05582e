// load_model on Hugging Face folders: a sharded checkpoint gives the same logits as the same weights
// in one file, and the folder's generation / tokenizer configs reach LoadedModel.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmlab/infer/model_loader.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;
using lmlab::test::TempDir;

namespace {

TransformerConfig tiny() {
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

std::vector<std::pair<std::string, Tensor>> weights_of(const TransformerConfig& cfg) {
  Transformer m(cfg, 11);
  Generator g(12);
  std::vector<std::pair<std::string, Tensor>> sd;
  for (auto& [n, p] : m.named_parameters()) sd.emplace_back(n, p.dim() == 1 ? Tensor::rand(p.shape(), g) : p);
  return sd;
}

std::vector<float> logits(const LoadedModel& lm) {
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 7, 3, 39, 0, 12}, {1, 6});
  NoGrad ng;
  return lm.model->forward(ids).to_vector<float>();
}

}  // namespace

TEST(ModelLoader, ShardedFolderMatchesSingleFile) {
  TempDir tmp("loader_shards");
  TransformerConfig cfg = tiny();
  auto sd = weights_of(cfg);
  for (const char* sub : {"one", "many"}) {
    std::filesystem::create_directories(tmp.path / sub);
    write_file_atomic(tmp / (std::string(sub) + "/config.json"), cfg.to_json());
  }
  save_safetensors_shards(tmp / "one", sd, uint64_t(1) << 30);
  auto written = save_safetensors_shards(tmp / "many", sd, 8192);  // ~ one layer's projections per shard
  ASSERT_GT(written.size(), 3u);
  write_file_atomic(tmp / "many/generation_config.json", R"({"eos_token_id":[3,4],"temperature":0.7})");
  write_file_atomic(tmp / "many/tokenizer_config.json", R"({"eos_token":"</s>","chat_template":"C"})");
  LoadedModel a = load_model(tmp / "one"), b = load_model(tmp / "many");
  EXPECT_EQ(logits(a), logits(b));  // the same bytes, so bit-identical
  EXPECT_TRUE(a.generation.eos_token_ids.empty());
  EXPECT_EQ(b.generation.eos_token_ids, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(b.generation.temperature, std::optional<double>(0.7));
  EXPECT_EQ(b.tokenizer_config.eos_token, std::optional<std::string>("</s>"));
  EXPECT_EQ(b.tokenizer_config.chat_template, std::optional<std::string>("C"));
  // a missing tensor names the index it came through
  auto idx = SafetensorsIndex::parse(lmlab::test::slurp(tmp.path / "many" / kSafetensorsIndexName));
  std::string dropped = idx.weight_map.begin()->first, shard = idx.weight_map.begin()->second;
  std::vector<std::pair<std::string, Tensor>> rest;
  auto f = SafetensorsFile::open(tmp / ("many/" + shard));
  for (const auto& n : f.names())
    if (n != dropped) rest.emplace_back(n, f.get(n).contiguous().clone());
  save_safetensors(tmp / ("many/" + shard), rest);
  idx.weight_map.erase(dropped);
  idx.total_size.reset();
  write_file_atomic(tmp / ("many/" + std::string(kSafetensorsIndexName)), idx.to_json());
  expect_error<FormatError>([&] { load_model(tmp / "many"); }, kSafetensorsIndexName);
  expect_error<FormatError>([&] { load_model(tmp / "many"); }, dropped);
}

// bf16 / f16 checkpoints stay in their stored type for inference (bf16 products), and give the logits
// of the same weights widened to f32 within bf16 activation rounding (prompt) or f32 rounding (decode).
TEST(ModelLoader, HalfPrecisionMatricesStayHalfPrecision) {
  for (auto [dt, tied] : {std::pair{DType::BF16, false}, std::pair{DType::F16, false}, std::pair{DType::BF16, true}}) {
    SCOPED_TRACE(std::string(dtype_name(dt)) + (tied ? " tied" : ""));
    TempDir tmp("loader_bf16");
    TransformerConfig cfg = tiny();
    cfg.tie_word_embeddings = tied;
    auto sd = weights_of(cfg);
    for (auto& [n, t] : sd) t = t.to(dt);
    write_file_atomic(tmp / "config.json", cfg.to_json());
    save_safetensors(tmp / "model.safetensors", sd);
    LoadedModel kept = load_model(tmp.path.string());
    ModelLoadOptions wide;
    wide.keep_stored_precision = false;
    LoadedModel f32 = load_model(tmp.path.string(), wide);
    // q k v o gate up down per layer + the embedding (+ lm_head when untied)
    EXPECT_EQ(kept.half_precision_matrices, 2 * 7 + 1 + (tied ? 0 : 1));
    EXPECT_EQ(f32.half_precision_matrices, 0);
    const GgmlType gt = dt == DType::BF16 ? GgmlType::BF16 : GgmlType::F16;
    EXPECT_TRUE(kept.model->model->embed_tokens->quantized());  // no f32 copy of the table
    EXPECT_EQ(kept.model->model->embed_tokens->qweight->type, gt);
    EXPECT_FALSE(f32.model->model->embed_tokens->quantized());
    if (!tied) {
      EXPECT_TRUE(kept.model->lm_head->quantized());
      EXPECT_EQ(kept.model->lm_head->qweight->type, gt);
    }
    auto a = logits(kept), b = logits(f32);
    EXPECT_LE(lmlab::test::max_abs_diff(a, b), 0.02 * lmlab::test::max_abs(b));
    // One token (the decode path, M = 1): weights are widened exactly, x is not rounded.
    NoGrad ng;
    Tensor one = Tensor::from_vector(std::vector<int64_t>{7}, {1, 1});
    auto c = kept.model->forward(one).to_vector<float>(), d = f32.model->forward(one).to_vector<float>();
    for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(c[i], d[i], 1e-5 * (1 + std::abs(d[i])));
  }
}

// config.json is held to the weights before the model is built: the two-billion-layer config beside
// two layers of weights (which used to allocate until the kernel killed it) is an error at once,
// naming the field, its value and what the weights hold; so is a width the tensors do not have.
TEST(ModelLoader, ConfigSizesAreHeldToTheWeights) {
  TempDir tmp("loader_sizes");
  TransformerConfig cfg = tiny();
  save_safetensors(tmp / "model.safetensors", weights_of(cfg));
  auto config_with = [&](const std::string& key, int64_t v) {
    nlohmann::json j = nlohmann::json::parse(cfg.to_json());
    j[key] = v;
    write_file_atomic(tmp / "config.json", j.dump());
  };
  auto t0 = std::chrono::steady_clock::now();
  config_with("num_hidden_layers", 2000000000);
  expect_error<ConfigError>([&] { load_model(tmp.path); }, "num_hidden_layers = 2000000000");
  expect_error<ConfigError>([&] { load_model(tmp.path); }, "model.safetensors' holds 2 layers");
  expect_error<ConfigError>([&] { load_model(tmp.path); }, "config.json");
  config_with("intermediate_size", 1000000);
  expect_error<ConfigError>([&] { load_model(tmp.path); }, "intermediate_size = 1000000 does not match the weights");
  config_with("vocab_size", 10000000);
  expect_error<ConfigError>([&] { load_model(tmp.path); }, "vocab_size = 10000000");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  config_with("num_hidden_layers", 2);
  EXPECT_EQ(load_model(tmp.path).model->cfg.num_hidden_layers, 2);
}
