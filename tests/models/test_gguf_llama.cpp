// GGUF <-> HF Llama folder conversion (lmlab/models/gguf_llama.h): llama.cpp's q/k row permutation,
// bit-exact round trips for f32/bf16/f16 sources, logits of a .gguf-loaded model equal to the HF
// folder's, the GGUF tokenizer encoding like tokenizer.json, and errors naming the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lmlab/infer/model_loader.h"
#include "lmlab/io/gguf.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "lmlab/models/gguf_llama.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;
using lmlab::test::TempDir;

namespace {

const std::string kText =
    "Hello, world! Grüße aus Köln — 東京 🍣 naïve café 123 <|endoftext|> über   tabs\tand\nlines";

Tokenizer make_tokenizer() {
  std::vector<std::string> texts = {"Hello, world! Hello again, world.",
                                    "The quick brown fox jumps over the lazy dog.", "Grüße aus Köln und München.",
                                    "東京 and 京都 are cities.", "hello hello hello world"};
  TrainOptions o;
  o.vocab_size = 320;
  o.min_frequency = 1;
  o.special_tokens = {"<|endoftext|>"};
  return Tokenizer::train(texts, o);
}

TransformerConfig make_config(int64_t vocab, bool tied) {
  TransformerConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  c.eos_token_id = 0;
  return c;
}

// Writes an HF folder with tensors in `dtype`; norms get non-trivial values.
void write_folder(const std::string& dir, const TransformerConfig& cfg, const Tokenizer& tok, DType dtype,
                  uint64_t seed = 7) {
  std::filesystem::create_directories(dir);
  Transformer m(cfg, seed);
  Generator g(seed + 1);
  std::vector<std::pair<std::string, Tensor>> sd;
  for (auto& [n, p] : m.named_parameters()) {
    Tensor t = p.dim() == 1 ? Tensor::rand(p.shape(), g) : p;
    sd.emplace_back(n, t.to(dtype));
  }
  write_file_atomic(dir + "/config.json", cfg.to_json());
  save_safetensors(dir + "/model.safetensors", sd);
  tok.save(dir + "/tokenizer.json");
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

void expect_round_trip(DType dtype, bool tied) {
  TempDir tmp("gguf_rt");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), tied);
  write_folder(tmp / "hf", cfg, tok, dtype);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
  GgufFile f = GgufFile::open(tmp / "m.gguf");
  GgmlType want = dtype == DType::F32 ? GgmlType::F32 : dtype == DType::F16 ? GgmlType::F16 : GgmlType::BF16;
  EXPECT_EQ(f.info("blk.0.attn_q.weight").type, want);
  EXPECT_EQ(f.info("blk.0.attn_norm.weight").type, GgmlType::F32);
  EXPECT_EQ(f.contains("output.weight"), !tied);
  gguf_to_hf_folder(tmp / "m.gguf", tmp / "back");
  auto a = load_safetensors(tmp / "hf/model.safetensors");
  auto b = load_safetensors(tmp / "back/model.safetensors");
  EXPECT_EQ(a.size(), b.size());
  for (auto& [n, t] : a) {
    ASSERT_TRUE(b.count(n)) << n;
    EXPECT_TRUE(same_bytes(t, b.at(n))) << n << " " << dtype_name(dtype);
  }
  TransformerConfig c2 = TransformerConfig::from_file(tmp / "back/config.json");
  EXPECT_EQ(c2.rms_norm_eps, cfg.rms_norm_eps);
  EXPECT_EQ(c2.rope_theta, cfg.rope_theta);
  EXPECT_EQ(c2.num_key_value_heads, 2);
  EXPECT_EQ(c2.tie_word_embeddings, tied);
  Tokenizer t2 = Tokenizer::from_file(tmp / "back/tokenizer.json");
  EXPECT_EQ(t2.encode(kText), tok.encode(kText));
}

// Copies a GGUF, letting `edit` change metadata or tensors.
void rewrite(const std::string& in, const std::string& out, const std::string& drop_tensor,
             const std::string& arch = "llama", const std::string& reshape = "") {
  GgufFile f = GgufFile::open(in);
  GgufWriter w;
  for (const auto& [k, v] : f.metadata()) w.set(k, k == "general.architecture" ? GgufValue(arch) : v);
  for (const auto& i : f.tensors()) {
    if (i.name == drop_tensor) continue;
    Tensor t = f.get_tensor(i.name);
    if (i.name == reshape) t = t.reshape({t.numel()});
    w.add_tensor(i.name, t);
  }
  w.write(out);
}

}  // namespace

TEST(GgufLlama, NameTableBothWays) {
  EXPECT_EQ(*llama_hf_to_gguf_name("model.layers.12.self_attn.o_proj.weight"), "blk.12.attn_output.weight");
  EXPECT_EQ(*llama_hf_to_gguf_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(*llama_gguf_to_hf_name("blk.3.ffn_norm.weight"), "model.layers.3.post_attention_layernorm.weight");
  EXPECT_EQ(*llama_gguf_to_hf_name("output.weight"), "lm_head.weight");
  EXPECT_FALSE(llama_hf_to_gguf_name("model.layers.x.mlp.up_proj.weight"));
  EXPECT_FALSE(llama_gguf_to_hf_name("blk.0.attn_qkv.weight"));
  for (const auto& e : llama_gguf_name_table()) {
    std::string hf = e.hf, g = e.gguf;
    if (auto p = hf.find("{i}"); p != std::string::npos) hf.replace(p, 3, "5");
    if (auto p = g.find("{i}"); p != std::string::npos) g.replace(p, 3, "5");
    EXPECT_EQ(*llama_hf_to_gguf_name(hf), g);
    EXPECT_EQ(*llama_gguf_to_hf_name(g), hf);
  }
}

TEST(GgufLlama, PermuteMatchesHandComputedCase) {
  // n_head 2, head_dim 4: HF rows per head (r0 r1 | r2 r3) -> GGML pairs (r0 r2)(r1 r3).
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[size_t(i)] = float(i);
  Tensor w = Tensor::from_vector(v, {8, 2});
  Tensor p = llama_permute_qk(w, 2);
  std::vector<int> rows = {0, 2, 1, 3, 4, 6, 5, 7};
  std::vector<float> want;
  for (int r : rows) want.insert(want.end(), {float(2 * r), float(2 * r + 1)});
  EXPECT_EQ(p.to_vector<float>(), want);
  EXPECT_TRUE(same_bytes(llama_permute_qk(p, 2, true), w));
}

TEST(GgufLlama, GgufHoldsPermutedQkAndMetadata) {
  TempDir tmp("gguf_meta");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), false);
  write_folder(tmp / "hf", cfg, tok, DType::F32);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf", GgmlType::F32);
  GgufFile f = GgufFile::open(tmp / "m.gguf");
  auto sd = load_safetensors(tmp / "hf/model.safetensors");
  // q: 4 heads of head_dim 8; k: 2 kv heads. Row (h, j, s) of the GGUF = HF row h*8 + s*4 + j.
  for (auto [hf, g, heads] : {std::tuple{"model.layers.1.self_attn.q_proj.weight", "blk.1.attn_q.weight", 4},
                              std::tuple{"model.layers.1.self_attn.k_proj.weight", "blk.1.attn_k.weight", 2}}) {
    Tensor src = sd.at(hf), got = f.get_tensor(g);
    EXPECT_FALSE(same_bytes(src, got)) << g;
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t s = 0; s < 2; ++s)
          EXPECT_TRUE(same_bytes(got.select(0, h * 8 + 2 * j + s), src.select(0, h * 8 + s * 4 + j))) << g;
  }
  EXPECT_TRUE(same_bytes(f.get_tensor("blk.0.attn_v.weight"), sd.at("model.layers.0.self_attn.v_proj.weight")));
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 2);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 4);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 8);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 32);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 64);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "gpt-2");
  EXPECT_EQ(int64_t(f.get_array("tokenizer.ggml.tokens").items.size()), int64_t(tok.vocab_size()));
  EXPECT_EQ(f.get_array("tokenizer.ggml.token_type").items.at(0), GgufValue(int32_t(3)));  // <|endoftext|>
  EXPECT_EQ(f.get_array("tokenizer.ggml.token_type").items.at(100), GgufValue(int32_t(1)));
  EXPECT_EQ(f.get_array("tokenizer.ggml.merges").items.size(), tok.model().merges().size());
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 0);
}

TEST(GgufLlama, RoundTripBitExactF32) {
  expect_round_trip(DType::F32, false);
  expect_round_trip(DType::F32, true);
}
TEST(GgufLlama, RoundTripBitExactBF16) { expect_round_trip(DType::BF16, false); }
TEST(GgufLlama, RoundTripBitExactF16) { expect_round_trip(DType::F16, true); }

TEST(GgufLlama, LoadModelGgufMatchesFolder) {
  for (bool tied : {false, true}) {
    TempDir tmp(tied ? "gguf_load_t" : "gguf_load_u");
    Tokenizer tok = make_tokenizer();
    TransformerConfig cfg = make_config(tok.vocab_size(), tied);
    write_folder(tmp / "hf", cfg, tok, DType::F32);
    hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
    LoadedModel a = load_model(tmp / "hf"), b = load_model(tmp / "m.gguf");
    ASSERT_TRUE(b.model && b.tokenizer);
    EXPECT_EQ(b.model->cfg.tie_word_embeddings, tied);
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{0, 5, 17, 260, 3, 99, 42}, {1, 7});
    NoGrad ng;
    std::vector<float> la = a.model->forward(ids).to_vector<float>(), lb = b.model->forward(ids).to_vector<float>();
    ASSERT_EQ(la.size(), lb.size());
    double md = 0;
    for (size_t i = 0; i < la.size(); ++i) md = std::max(md, double(std::abs(la[i] - lb[i])));
    EXPECT_LE(md, 1e-6);
    EXPECT_EQ(b.tokenizer->encode(kText), a.tokenizer->encode(kText));
    EXPECT_EQ(b.tokenizer->encode(kText, false), a.tokenizer->encode(kText, false));
    EXPECT_EQ(b.tokenizer->decode(b.tokenizer->encode(kText)), kText);
    EXPECT_EQ(b.tokenizer->eos_id(), std::optional<int32_t>(0));
  }
}

TEST(GgufLlama, ErrorsNameTheProblem) {
  TempDir tmp("gguf_err");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), false);
  write_folder(tmp / "hf", cfg, tok, DType::F32);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
  rewrite(tmp / "m.gguf", tmp / "arch.gguf", "", "gpt2");
  expect_error<FormatError>([&] { load_gguf_llama(tmp / "arch.gguf"); }, "general.architecture is 'gpt2'");
  expect_error<FormatError>([&] { gguf_to_hf_folder(tmp / "arch.gguf", tmp / "x"); }, "expected 'llama'");
  rewrite(tmp / "m.gguf", tmp / "miss.gguf", "blk.1.ffn_up.weight");
  expect_error<FormatError>([&] { load_model(tmp / "miss.gguf"); }, "missing tensor 'blk.1.ffn_up.weight'");
  rewrite(tmp / "m.gguf", tmp / "shape.gguf", "", "llama", "blk.0.attn_k.weight");
  expect_error<FormatError>([&] { load_model(tmp / "shape.gguf"); }, "tensor 'blk.0.attn_k.weight' has shape");
  expect_error<FormatError>([&] { load_model(tmp / "shape.gguf"); }, "shape.gguf");
  // a wrong-shaped HF tensor when writing
  auto sd = load_safetensors(tmp / "hf/model.safetensors");
  sd["model.norm.weight"] = Tensor::zeros({31});
  save_safetensors(tmp / "hf/model.safetensors", {sd.begin(), sd.end()});
  expect_error<FormatError>([&] { hf_folder_to_gguf(tmp / "hf", tmp / "y.gguf"); },
                            "tensor 'model.norm.weight' has shape");
  sd.erase("model.norm.weight");
  save_safetensors(tmp / "hf/model.safetensors", {sd.begin(), sd.end()});
  expect_error<FormatError>([&] { hf_folder_to_gguf(tmp / "hf", tmp / "y.gguf"); },
                            "missing tensor 'model.norm.weight'");
}
