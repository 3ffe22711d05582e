// GGUF <-> HF folder conversion (lmlab/models/gguf_model.h) for llama / qwen2 / qwen3 / qwen3moe:
// llama.cpp's q/k row permutation, bit-exact round trips for f32/bf16/f16 sources, logits of a
// .gguf-loaded model equal to the HF folder's (f32) or within the quantization error (Q8_0, Q4_K,
// BF16 kept in their stored type), the GGUF tokenizer encoding like tokenizer.json, and errors naming
// the problem.
#include <gtest/gtest.h>

#include <chrono>

#include <cstring>
#include <filesystem>
#include <set>

#include "lmlab/infer/model_loader.h"
#include "lmlab/io/gguf.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "lmlab/io/gguf_quantize.h"
#include "tests/batched_rows_check.h"
#include "lmlab/models/gguf_model.h"
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

TransformerConfig make_config(int64_t vocab, bool tied, const std::string& arch = "LlamaForCausalLM") {
  TransformerConfig c;
  c.architecture = arch;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  c.eos_token_id = 0;
  if (arch == "Qwen2ForCausalLM") c.attention_bias = true;
  if (arch == "Qwen3ForCausalLM" || arch == "Qwen3MoeForCausalLM") c.head_dim = 16;  // != hidden / heads
  if (arch == "Qwen3MoeForCausalLM") {
    c.num_experts = 4;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = 32;
    c.norm_topk_prob = true;
    c.mlp_only_layers = {0};
  }
  return c;
}

const std::vector<std::string> kArchs = {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                                         "Qwen3MoeForCausalLM"};

using lmlab::test::max_abs;
using lmlab::test::max_abs_diff;

std::vector<float> logits_of(const Transformer& m) {
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{0, 5, 17, 260, 3, 99, 42}, {1, 7});
  NoGrad ng;
  return m.forward(ids).to_vector<float>();
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

void expect_round_trip(DType dtype, bool tied, const std::string& arch = "LlamaForCausalLM") {
  TempDir tmp("gguf_rt");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), tied, arch);
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
  EXPECT_EQ(c2.architecture, arch);
  EXPECT_EQ(c2.resolved_head_dim(), cfg.resolved_head_dim());
  EXPECT_EQ(c2.num_experts, cfg.num_experts);
  EXPECT_EQ(c2.mlp_only_layers, cfg.mlp_only_layers);
  EXPECT_EQ(c2.attention_bias, cfg.attention_bias);
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

TEST(GgufModel, NameTablePerArchitecture) {
  TransformerConfig llama = make_config(320, false);
  EXPECT_EQ(gguf_arch_name(llama), "llama");
  EXPECT_EQ(*hf_to_gguf_name(llama, "model.layers.1.self_attn.o_proj.weight"), "blk.1.attn_output.weight");
  EXPECT_EQ(*hf_to_gguf_name(llama, "model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(*hf_to_gguf_name(llama, "model.layers.1.post_attention_layernorm.weight"), "blk.1.ffn_norm.weight");
  EXPECT_EQ(*hf_to_gguf_name(llama, "lm_head.weight"), "output.weight");
  EXPECT_FALSE(hf_to_gguf_name(llama, "model.layers.2.mlp.up_proj.weight"));  // only 2 layers
  EXPECT_FALSE(hf_to_gguf_name(llama, "model.layers.0.self_attn.q_proj.bias"));
  TransformerConfig q2 = make_config(320, true, "Qwen2ForCausalLM");
  EXPECT_EQ(gguf_arch_name(q2), "qwen2");
  EXPECT_EQ(*hf_to_gguf_name(q2, "model.layers.0.self_attn.k_proj.bias"), "blk.0.attn_k.bias");
  EXPECT_FALSE(hf_to_gguf_name(q2, "model.layers.0.self_attn.o_proj.bias"));  // Qwen2: q/k/v only
  EXPECT_FALSE(hf_to_gguf_name(q2, "lm_head.weight"));                        // tied
  TransformerConfig q3 = make_config(320, false, "Qwen3ForCausalLM");
  EXPECT_EQ(gguf_arch_name(q3), "qwen3");
  EXPECT_EQ(*hf_to_gguf_name(q3, "model.layers.1.self_attn.q_norm.weight"), "blk.1.attn_q_norm.weight");
  TransformerConfig moe = make_config(320, false, "Qwen3MoeForCausalLM");
  EXPECT_EQ(gguf_arch_name(moe), "qwen3moe");
  EXPECT_EQ(*hf_to_gguf_name(moe, "model.layers.0.mlp.up_proj.weight"), "blk.0.ffn_up.weight");  // dense layer 0
  EXPECT_EQ(*hf_to_gguf_name(moe, "model.layers.1.mlp.gate.weight"), "blk.1.ffn_gate_inp.weight");
  EXPECT_EQ(*hf_to_gguf_name(moe, "model.layers.1.mlp.experts.3.down_proj.weight"), "blk.1.ffn_down_exps.weight");
  int permuted = 0;
  for (const auto& slot : gguf_tensor_slots(llama)) permuted += slot.permute > 0;
  EXPECT_EQ(permuted, 4);  // q and k of 2 layers
  for (const auto& slot : gguf_tensor_slots(q3)) EXPECT_EQ(slot.permute, 0) << slot.hf;  // NEOX rope: no permute
  // Every slot of every architecture names a distinct HF tensor, and the model has exactly those.
  for (const auto& arch : kArchs) {
    TransformerConfig c = make_config(320, false, arch);
    Transformer m(c);
    std::set<std::string> names;
    for (const auto& slot : gguf_tensor_slots(c)) EXPECT_TRUE(names.insert(slot.hf).second) << slot.hf;
    std::set<std::string> params;
    for (const auto& [n, t] : m.named_parameters()) params.insert(n);
    EXPECT_EQ(names, params) << arch;
  }
  TransformerConfig bad = llama;
  bad.architecture = "GPT2LMHeadModel";
  expect_error<FormatError>([&] { gguf_arch_name(bad); }, "architecture 'GPT2LMHeadModel' has no GGUF mapping");
}

TEST(GgufModel, PermuteMatchesHandComputedCase) {
  // n_head 2, head_dim 4: HF rows per head (r0 r1 | r2 r3) -> GGML pairs (r0 r2)(r1 r3).
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[size_t(i)] = float(i);
  Tensor w = Tensor::from_vector(v, {8, 2});
  Tensor p = gguf_permute_qk(w, 2);
  std::vector<int> rows = {0, 2, 1, 3, 4, 6, 5, 7};
  std::vector<float> want;
  for (int r : rows) want.insert(want.end(), {float(2 * r), float(2 * r + 1)});
  EXPECT_EQ(p.to_vector<float>(), want);
  EXPECT_TRUE(same_bytes(gguf_permute_qk(p, 2, true), w));
  // The same permutation on quantized rows moves whole rows of blocks.
  Generator g(3);
  Tensor big = Tensor::randn({8, 64}, g);
  QMatrix q = QMatrix::quantize(big, GgmlType::Q8_0);
  QMatrix qp = gguf_permute_qk(q, 2);
  QMatrix want_q = QMatrix::quantize(gguf_permute_qk(big, 2), GgmlType::Q8_0);
  ASSERT_EQ(qp.nbytes(), want_q.nbytes());
  EXPECT_EQ(std::memcmp(qp.bytes.get(), want_q.bytes.get(), qp.nbytes()), 0);
  QMatrix back = gguf_permute_qk(qp, 2, true);
  EXPECT_EQ(std::memcmp(back.bytes.get(), q.bytes.get(), q.nbytes()), 0);
}

TEST(GgufModel, GgufHoldsPermutedQkAndMetadata) {
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

TEST(GgufModel, RoundTripBitExactF32) {
  expect_round_trip(DType::F32, false);
  expect_round_trip(DType::F32, true);
}
TEST(GgufModel, RoundTripBitExactBF16) { expect_round_trip(DType::BF16, false); }
TEST(GgufModel, RoundTripBitExactF16) { expect_round_trip(DType::F16, true); }
TEST(GgufModel, RoundTripBitExactQwenFamilies) {
  for (const auto& arch : {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM"}) {
    SCOPED_TRACE(arch);
    expect_round_trip(DType::F32, true, arch);
    expect_round_trip(DType::BF16, false, arch);
  }
}

TEST(GgufModel, QwenMetadataAndStackedExperts) {
  TempDir tmp("gguf_qwen");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), false, "Qwen3MoeForCausalLM");
  write_folder(tmp / "hf", cfg, tok, DType::F32);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
  GgufFile f = GgufFile::open(tmp / "m.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "qwen3moe");
  EXPECT_EQ(f.get_int("qwen3moe.expert_count"), 4);
  EXPECT_EQ(f.get_int("qwen3moe.expert_used_count"), 2);
  EXPECT_EQ(f.get_int("qwen3moe.expert_feed_forward_length"), 32);
  EXPECT_EQ(f.get_int("qwen3moe.attention.key_length"), 16);
  EXPECT_EQ(f.info("blk.1.ffn_gate_exps.weight").shape, (Shape{4, 32, 32}));
  EXPECT_EQ(f.info("blk.1.ffn_down_exps.weight").shape, (Shape{4, 32, 32}));
  EXPECT_TRUE(f.contains("blk.0.ffn_gate.weight"));    // mlp_only_layers = {0}
  EXPECT_FALSE(f.contains("blk.1.ffn_gate.weight"));
  auto sd = load_safetensors(tmp / "hf/model.safetensors");
  Tensor stacked = f.get_tensor("blk.1.ffn_up_exps.weight");
  EXPECT_TRUE(same_bytes(stacked.select(0, 2).contiguous(), sd.at("model.layers.1.mlp.experts.2.up_proj.weight")));
  // q/k rows are not permuted for the qwen architectures.
  EXPECT_TRUE(same_bytes(f.get_tensor("blk.0.attn_q.weight"), sd.at("model.layers.0.self_attn.q_proj.weight")));
}

TEST(GgufModel, EveryArchitectureLoadsWithTheFoldersLogits) {
  for (const auto& arch : kArchs) {
    SCOPED_TRACE(arch);
    TempDir tmp("gguf_arch_logits");
    Tokenizer tok = make_tokenizer();
    TransformerConfig cfg = make_config(tok.vocab_size(), false, arch);
    write_folder(tmp / "hf", cfg, tok, DType::F32);
    hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
    LoadedModel a = load_model(tmp / "hf"), b = load_model(tmp / "m.gguf");
    auto la = logits_of(*a.model), lb = logits_of(*b.model);
    ASSERT_EQ(la.size(), lb.size());
    EXPECT_LE(max_abs_diff(la, lb), 1e-6);
  }
}

// Quantized files load with their matrices kept quantized; logits stay within the quantization error
// of the f32 model and equal those of the same file dequantized to f32 up to the activation rounding.
TEST(GgufModel, QuantizedFilesRunQuantized) {
  TempDir tmp("gguf_quant");
  Tokenizer tok = make_tokenizer();
  for (const auto& arch : {"LlamaForCausalLM", "Qwen3MoeForCausalLM"}) {
    SCOPED_TRACE(arch);
    TransformerConfig cfg = make_config(tok.vocab_size(), false, arch);
    write_folder(tmp / "hf", cfg, tok, DType::F32);
    hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
    auto ref = logits_of(*load_gguf_model(tmp / "m.gguf").model);
    for (auto [type, tol] : {std::pair{GgmlType::Q8_0, 0.02}, std::pair{GgmlType::BF16, 0.02}}) {
      QuantizeOptions o;
      o.type = type;
      gguf_quantize(tmp / "m.gguf", tmp / "q.gguf", o);
      GgufModel q = load_gguf_model(tmp / "q.gguf");
      GgufLoadOptions f32;
      f32.keep_quantized = false;
      GgufModel d = load_gguf_model(tmp / "q.gguf", f32);
      EXPECT_GT(q.quantized_matrices, 0);
      EXPECT_EQ(d.quantized_matrices, 0);
      // The embedding is looked up in its stored type: no f32 copy of the table.
      EXPECT_TRUE(q.model->model->embed_tokens->quantized());
      EXPECT_FALSE(d.model->model->embed_tokens->quantized());
      if (type == GgmlType::Q8_0) {  // Q8_0 matrices in whole 16-row groups run interleaved
        const Linear& o = *q.model->model->layers[0]->self_attn->o_proj;
        ASSERT_TRUE(o.quantized());
        EXPECT_EQ(o.qweight->interleave, o.out_features % 16 == 0 ? 16 : 0);
      }
      auto lq = logits_of(*q.model), ld = logits_of(*d.model);
      const double scale = max_abs(ref);
      EXPECT_LE(max_abs_diff(lq, ref), tol * scale) << ggml_type_name(type);
      EXPECT_LE(max_abs_diff(lq, ld), tol * scale) << ggml_type_name(type);
      EXPECT_GT(max_abs_diff(lq, ref), 0.0) << "the quantized path must differ from f32 somewhere";
      // Continuous batching over the quantized products: rows fed together equal rows fed alone.
      test::expect_rows_match_alone(*q.model, 1e-3);
    }
  }
}

TEST(GgufModel, Q4KModelWithWideRows) {
  TempDir tmp("gguf_q4k");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), true);
  cfg.hidden_size = 256;
  cfg.intermediate_size = 512;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 4;
  write_folder(tmp / "hf", cfg, tok, DType::F32);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
  QuantizeOptions o;
  o.type = GgmlType::Q4_K;
  QuantizeReport r = gguf_quantize(tmp / "m.gguf", tmp / "q.gguf", o);
  EXPECT_TRUE(r.notes.empty());
  GgufFile f = GgufFile::open(tmp / "q.gguf");
  EXPECT_EQ(f.info("blk.0.ffn_down.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(f.info("token_embd.weight").type, GgmlType::Q6_K);  // tied: the embedding is the head
  GgufModel q = load_gguf_model(tmp / "q.gguf");
  EXPECT_EQ(q.quantized_matrices, 2 * 7 + 1);  // + the tied head, run from the Q6_K embedding
  EXPECT_TRUE(q.model->cfg.tie_word_embeddings);
  ASSERT_TRUE(q.model->lm_head && q.model->lm_head->quantized());
  EXPECT_EQ(q.model->lm_head->qweight->type, GgmlType::Q6_K);
  auto ref = logits_of(*load_gguf_model(tmp / "m.gguf").model), lq = logits_of(*q.model);
  EXPECT_LE(max_abs_diff(lq, ref), 0.1 * max_abs(ref));
}

TEST(GgufModel, LoadModelGgufMatchesFolder) {
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
    EXPECT_LE(max_abs_diff(la, lb), 1e-6);
    EXPECT_EQ(b.tokenizer->encode(kText), a.tokenizer->encode(kText));
    EXPECT_EQ(b.tokenizer->encode(kText, false), a.tokenizer->encode(kText, false));
    EXPECT_EQ(b.tokenizer->decode(b.tokenizer->encode(kText)), kText);
    EXPECT_EQ(b.tokenizer->eos_id(), std::optional<int32_t>(0));
  }
}

TEST(GgufModel, ErrorsNameTheProblem) {
  TempDir tmp("gguf_err");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), false);
  write_folder(tmp / "hf", cfg, tok, DType::F32);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
  rewrite(tmp / "m.gguf", tmp / "arch.gguf", "", "gpt2");
  expect_error<FormatError>([&] { load_gguf_model(tmp / "arch.gguf"); }, "general.architecture is 'gpt2'");
  expect_error<FormatError>([&] { gguf_to_hf_folder(tmp / "arch.gguf", tmp / "x"); },
                            "supported: llama, qwen2, qwen3, qwen3moe");
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

// Llama 3.x rope scaling in GGUF: llama.cpp's form is the tensor rope_freqs.weight (per-pair divisors
// of the inverse frequencies). Written from an HF llama3 config (plus lmlab's keys with the
// parameters), read back to the same config, and read from a file without those keys (as llama.cpp's
// converter writes it) by fitting the llama3 parameters; factors no llama3 setting gives run as
// explicit factors.
TEST(GgufModel, Llama3RopeScalingAsRopeFreqs) {
  TempDir tmp("gguf_llama3");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), false);
  cfg.head_dim = 64;  // 32 pairs: four lie between the llama3 plateaus at theta 1e4, L 8192
  cfg.rope_scaling.type = RopeScaling::Type::Llama3;
  cfg.rope_scaling.factor = 8;
  cfg.rope_scaling.low_freq_factor = 1;
  cfg.rope_scaling.high_freq_factor = 4;
  cfg.rope_scaling.original_max_position = 8192;
  write_folder(tmp / "hf", cfg, tok, DType::F32);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
  RopeConfig rc;
  rc.head_dim = 64;
  rc.theta = cfg.rope_theta;
  rc.scaling = cfg.rope_scaling;
  const std::vector<double> want = rope_freq_factors(rc);
  {
    GgufFile f = GgufFile::open(tmp / "m.gguf");
    ASSERT_TRUE(f.contains("rope_freqs.weight"));
    EXPECT_EQ(f.info("rope_freqs.weight").type, GgmlType::F32);
    auto got = f.get_tensor("rope_freqs.weight").to_vector<float>();
    ASSERT_EQ(got.size(), 32u);
    for (size_t i = 0; i < 32; ++i) EXPECT_EQ(got[i], float(want[i]));
    EXPECT_EQ(got.front(), 1.0f);
    EXPECT_EQ(got.back(), 8.0f);
    TransformerConfig back = gguf_model_config(f);
    EXPECT_EQ(back.rope_scaling.type, RopeScaling::Type::Llama3);
    EXPECT_EQ(back.rope_scaling.original_max_position, 8192);
    EXPECT_EQ(back.rope_scaling.factor, 8.0);
    EXPECT_EQ(back.rope_scaling.high_freq_factor, 4.0);
  }
  LoadedModel a = load_model(tmp / "hf"), b = load_model(tmp / "m.gguf");
  const auto la = logits_of(*a.model);
  EXPECT_LE(max_abs_diff(la, logits_of(*b.model)), 1e-6);
  gguf_to_hf_folder(tmp / "m.gguf", tmp / "back");
  EXPECT_EQ(TransformerConfig::from_file(tmp / "back/config.json").to_json(), cfg.to_json());

  // Without lmlab's keys (llama.cpp's converter): the parameters are fitted from the factors.
  {
    GgufFile f = GgufFile::open(tmp / "m.gguf");
    GgufWriter w;
    for (const auto& [k, v] : f.metadata())
      if (!k.starts_with("lmlab.")) w.set(k, v);
    for (const auto& i : f.tensors()) w.add_tensor(i.name, f.get_tensor(i.name));
    w.write(tmp / "plain.gguf");
  }
  TransformerConfig fit = gguf_model_config(GgufFile::open(tmp / "plain.gguf"));
  EXPECT_EQ(fit.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_NEAR(fit.rope_scaling.factor, 8.0, 1e-6);
  EXPECT_NEAR(fit.rope_scaling.low_freq_factor, 1.0, 1e-4);
  EXPECT_NEAR(fit.rope_scaling.high_freq_factor, 4.0, 1e-4);
  EXPECT_TRUE(fit.rope_scaling.freq_factors.empty());
  EXPECT_LE(max_abs_diff(la, logits_of(*load_model(tmp / "plain.gguf").model)), 1e-5);

  // Factors of no llama3 setting: kept as explicit factors (lmlab's config key), the model runs with
  // them, and there is no HF config.json form.
  std::vector<float> odd = {1, 3, 2, 5};
  odd.resize(32, 7.0f);
  auto with_factors = [&](const std::vector<float>& ff, const std::string& out) {
    GgufFile f = GgufFile::open(tmp / "plain.gguf");
    GgufWriter w;
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (const auto& i : f.tensors())
      w.add_tensor(i.name, i.name == "rope_freqs.weight" ? Tensor::from_vector(ff, {int64_t(ff.size())})
                                                         : f.get_tensor(i.name));
    w.write(out);
  };
  with_factors(odd, tmp / "odd.gguf");
  TransformerConfig oc = gguf_model_config(GgufFile::open(tmp / "odd.gguf"));
  EXPECT_EQ(oc.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_EQ(oc.rope_scaling.freq_factors, std::vector<double>(odd.begin(), odd.end()));
  EXPECT_EQ(TransformerConfig::from_json(oc.to_json()).rope_scaling.freq_factors, oc.rope_scaling.freq_factors);
  auto lo = logits_of(*load_model(tmp / "odd.gguf").model);
  EXPECT_GT(max_abs_diff(la, lo), 1e-4) << "different rope factors must change the logits";
  expect_error<FormatError>([&] { gguf_to_hf_folder(tmp / "odd.gguf", tmp / "odd"); },
                            "matches no Hugging Face rope_scaling type");
  // Bad factors and shapes name the tensor.
  with_factors({1, 2, 3}, tmp / "short.gguf");
  expect_error<FormatError>([&] { load_model(tmp / "short.gguf"); },
                            "tensor 'rope_freqs.weight' has shape [3], expected [32] (head_dim / 2)");
  std::vector<float> neg(32, 1.0f);
  neg[5] = -1;
  with_factors(neg, tmp / "neg.gguf");
  expect_error<FormatError>([&] { load_model(tmp / "neg.gguf"); }, "rope factors must be finite and positive");
  // llama.cpp reads rope_freqs for its llama architecture only.
  TransformerConfig qwen = make_config(tok.vocab_size(), false, "Qwen2ForCausalLM");
  qwen.rope_scaling = cfg.rope_scaling;
  write_folder(tmp / "qwen", qwen, tok, DType::F32);
  expect_error<FormatError>([&] { hf_folder_to_gguf(tmp / "qwen", tmp / "q.gguf"); },
                            "have no GGUF form for architecture 'qwen2'");
}

// Sizes in the metadata are held to the tensors the file has before any model is built: a block count
// of two billion beside two blocks is an error naming the key (at once, without allocating), and so
// are an embedding or FFN width the tensors do not have.
TEST(GgufModel, MetadataSizesAreHeldToTheTensors) {
  TempDir tmp("gguf_sizes");
  Tokenizer tok = make_tokenizer();
  TransformerConfig cfg = make_config(tok.vocab_size(), false);
  write_folder(tmp / "hf", cfg, tok, DType::F32);
  hf_folder_to_gguf(tmp / "hf", tmp / "m.gguf");
  auto with = [&](const std::string& key, GgufValue v) {
    GgufFile f = GgufFile::open(tmp / "m.gguf");
    GgufWriter w;
    for (const auto& [k, val] : f.metadata()) w.set(k, k == key ? v : val);
    for (const auto& i : f.tensors()) w.add_tensor(i.name, f.get_tensor(i.name));
    w.write(tmp / "bad.gguf");
    return tmp / "bad.gguf";
  };
  auto t0 = std::chrono::steady_clock::now();
  std::string bad = with("llama.block_count", uint32_t(2000000000));
  expect_error<ConfigError>([&] { load_model(bad); }, "llama.block_count = 2000000000");
  expect_error<ConfigError>([&] { load_model(bad); }, "holds 2 layers (blk.0 .. blk.1)");
  expect_error<ConfigError>([&] { gguf_to_hf_folder(bad, tmp / "x"); }, "llama.block_count = 2000000000");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  bad = with("llama.feed_forward_length", uint32_t(1000000));
  expect_error<FormatError>([&] { load_model(bad); }, "describes a model of");
  expect_error<FormatError>([&] { load_model(bad); }, "llama.feed_forward_length 1000000");
  bad = with("llama.embedding_length", uint32_t(1 << 20));
  expect_error<FormatError>([&] { load_model(bad); }, "llama.embedding_length = 1048576");
  expect_error<FormatError>([&] { load_model(bad); }, "token_embd.weight");
  bad = with("llama.vocab_size", uint32_t(4000000000u));
  expect_error<FormatError>([&] { load_model(bad); }, "vocab_size = 4000000000 is above lmlab's limit");
  bad = with("llama.attention.head_count", uint32_t(0));
  expect_error<FormatError>([&] { load_model(bad); }, "head_count must be positive");
}
