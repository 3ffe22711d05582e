// `lmlab quantize` (io/gguf_quantize): which tensors change type, what is kept, fallbacks, errors,
// and that the re-encoded values are the target type's encoding of the source values.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/core/file.h"
#include "lmlab/core/quant.h"
#include "lmlab/io/gguf.h"
#include "lmlab/io/gguf_quantize.h"
#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;
using lmlab::test::TempDir;

namespace {

Tensor randn(const Shape& s, uint64_t seed) {
  Generator g(seed);
  Tensor t = Tensor::randn(s, g);
  mul_(t, 0.05);
  return t;
}

// A llama-like file: embeddings, one block's matrices, a router, norms, an LM head, and a matrix
// whose rows (96 values) fit Q8_0 blocks but not K-quant super-blocks.
std::string make_source(const TempDir& d) {
  GgufWriter w;
  w.set("general.architecture", "llama");
  w.set("llama.block_count", uint32_t(1));
  w.add_tensor("token_embd.weight", randn({64, 256}, 1));
  w.add_tensor("blk.0.attn_q.weight", randn({256, 256}, 2));
  w.add_tensor("blk.0.ffn_down.weight", randn({256, 512}, 3), GgmlType::F16);
  w.add_tensor("blk.0.ffn_gate_inp.weight", randn({4, 256}, 4));
  w.add_tensor("blk.0.attn_norm.weight", randn({256}, 5));
  w.add_tensor("blk.0.odd.weight", randn({8, 96}, 6));
  w.add_tensor("output.weight", randn({64, 256}, 7));
  std::string p = d / "src.gguf";
  w.write(p);
  return p;
}

double rel_err(const GgufFile& a, const GgufFile& b, const std::string& name) {
  Tensor x = a.get_tensor(name), y = b.get_tensor(name);
  auto xv = x.to_vector<float>(), yv = y.to_vector<float>();
  double e = 0, s = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    e += (xv[i] - yv[i]) * (xv[i] - yv[i]);
    s += xv[i] * xv[i];
  }
  return std::sqrt(e / s);
}

}  // namespace

TEST(GgufQuantize, Q4KChoosesTypesPerTensor) {
  TempDir d;
  std::string src = make_source(d), dst = d / "q4k.gguf";
  QuantizeOptions o;
  o.type = GgmlType::Q4_K;
  QuantizeReport r = gguf_quantize(src, dst, o);
  GgufFile a = GgufFile::open(src), b = GgufFile::open(dst);
  EXPECT_EQ(r.tensors, 7);
  EXPECT_EQ(b.info("token_embd.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(b.info("blk.0.attn_q.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(b.info("blk.0.ffn_down.weight").type, GgmlType::Q4_K);      // from f16
  EXPECT_EQ(b.info("blk.0.ffn_gate_inp.weight").type, GgmlType::F32);   // router kept
  EXPECT_EQ(b.info("blk.0.attn_norm.weight").type, GgmlType::F32);      // 1-D kept
  EXPECT_EQ(b.info("blk.0.odd.weight").type, GgmlType::Q8_0);           // 96 % 256 != 0 -> Q8_0
  EXPECT_EQ(b.info("output.weight").type, GgmlType::Q6_K);              // the head
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("blk.0.odd.weight"), std::string::npos);
  EXPECT_EQ(b.get_int("general.file_type"), 14);
  EXPECT_EQ(b.get_string("general.architecture"), "llama");
  EXPECT_EQ(b.get_int("llama.block_count"), 1);
  EXPECT_LT(r.bytes_out, r.bytes_in / 4);
  // Kept tensors are bit-identical; re-encoded ones are within each type's error.
  auto ra = a.raw("blk.0.ffn_gate_inp.weight"), rb = b.raw("blk.0.ffn_gate_inp.weight");
  EXPECT_TRUE(std::equal(ra.begin(), ra.end(), rb.begin(), rb.end()));
  EXPECT_LT(rel_err(a, b, "blk.0.attn_q.weight"), 0.09);  // 4.5 bits per weight, gaussian data
  EXPECT_LT(rel_err(a, b, "output.weight"), 0.025);       // 6.6 bits
  EXPECT_LT(rel_err(a, b, "blk.0.odd.weight"), 0.01);     // 8.5 bits
}

TEST(GgufQuantize, EncodingEqualsTheRowQuantizer) {
  TempDir d;
  std::string src = make_source(d), dst = d / "q8.gguf";
  QuantizeOptions o;
  o.type = GgmlType::Q8_0;
  gguf_quantize(src, dst, o);
  GgufFile a = GgufFile::open(src), b = GgufFile::open(dst);
  EXPECT_EQ(b.info("output.weight").type, GgmlType::Q8_0);  // 8-bit: the head keeps the main type
  auto x = a.get_tensor("blk.0.attn_q.weight").to_vector<float>();
  std::string want(ggml_row_size(GgmlType::Q8_0, int64_t(x.size())), '\0');
  ggml_quantize(GgmlType::Q8_0, x.data(), want.data(), int64_t(x.size()));
  auto got = b.raw("blk.0.attn_q.weight");
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size()), 0);
}

TEST(GgufQuantize, OutputTypeOverrideAndRequantize) {
  TempDir d;
  std::string src = make_source(d), q8 = d / "q8.gguf", q6 = d / "q6.gguf";
  QuantizeOptions o;
  o.type = GgmlType::Q8_0;
  o.output_type = GgmlType::F16;
  gguf_quantize(src, q8, o);
  EXPECT_EQ(GgufFile::open(q8).info("output.weight").type, GgmlType::F16);
  o.type = GgmlType::Q6_K;
  o.output_type.reset();
  QuantizeReport r = gguf_quantize(q8, q6, o);  // already quantized input
  GgufFile b = GgufFile::open(q6);
  EXPECT_EQ(b.info("blk.0.attn_q.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(b.info("output.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(r.requantized, 4);  // embd, attn_q, ffn_down, output (odd stays Q8_0)
}

TEST(GgufQuantize, BadInput) {
  TempDir d;
  std::string src = make_source(d);
  expect_error<ValueError>([] { ggml_type_from_name("q5_k"); }, "unknown type 'q5_k'");
  EXPECT_EQ(ggml_type_from_name("Q4_K"), GgmlType::Q4_K);
  QuantizeOptions o;
  expect_error<ValueError>([&] { gguf_quantize(src, src, o); }, "same file");
  expect_error<IoError>([&] { gguf_quantize(d / "missing.gguf", d / "x.gguf", o); }, "missing.gguf");
  std::string junk = d / "junk.gguf";
  write_file_atomic(junk, "GGUF not really", "test");
  expect_error<FormatError>([&] { gguf_quantize(junk, d / "x.gguf", o); }, "junk.gguf");
  EXPECT_FALSE(std::filesystem::exists(d / "x.gguf"));
}
