// GGUF reader/writer and ggml block quantization: metadata and tensor round trips, hand-worked
// known-answer blocks for Q4_0/Q8_0, error bounds per type, truncation at every byte and
// corrupted fields (llama.cpp ggml/docs/gguf.md, ggml-common.h block layouts).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "lmlab/core/file.h"
#include "lmlab/io/gguf.h"
#include "lmlab/core/quant.h"
#include "lmlab/lmlab.h"

using namespace lmlab;

namespace {

std::string tmp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / "lmlab_gguf_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

template <class F>
std::string throws_format(F&& f) {
  try {
    f();
  } catch (const FormatError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected FormatError";
  return "";
}

// A small file: one kv, one 8-element f32 tensor (32 bytes: no trailing padding).
std::string small_file() {
  GgufWriter w;
  w.set("general.name", "tiny");
  w.add_tensor("t", Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}));
  return w.bytes();
}

// Offsets inside small_file(): header 24; kv: 8+12 key, 4 type, 8+4 string = 36 -> 60;
// tensor info: 8+1 name (69), n_dims (73), dims 2x8 (89), type (93), offset (101).
constexpr size_t kNDimsAt = 69, kTypeAt = 89, kOffsetAt = 93;

void put_u32(std::string& s, size_t at, uint32_t v) { std::memcpy(s.data() + at, &v, 4); }
void put_u64(std::string& s, size_t at, uint64_t v) { std::memcpy(s.data() + at, &v, 8); }

std::vector<float> randn_vec(int64_t n, uint64_t seed, float scale = 1.f) {
  Generator g(seed);
  Tensor t = Tensor::randn({n}, g);
  std::vector<float> v(static_cast<float*>(t.raw_data()), static_cast<float*>(t.raw_data()) + n);
  for (auto& x : v) x *= scale;
  return v;
}

}  // namespace

TEST(Gguf, MetadataRoundTripEveryType) {
  GgufWriter w;
  w.set("u8", uint8_t(200));
  w.set("i8", int8_t(-100));
  w.set("u16", uint16_t(60000));
  w.set("i16", int16_t(-30000));
  w.set("u32", uint32_t(4000000000u));
  w.set("i32", int32_t(-2000000000));
  w.set("f32", 1.5f);
  w.set("bool", true);
  w.set("str", "héllo");
  w.set("u64", uint64_t(1) << 63);
  w.set("i64", int64_t(-(int64_t(1) << 62)));
  w.set("f64", 3.141592653589793);
  w.set("strs", GgufValue::array(GgufType::STRING, {"a", "", "ccc"}));
  w.set("nested", GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::I32, {int32_t(1), int32_t(-2)}),
                                                     GgufValue::array(GgufType::I32, {})}));
  w.set("f32s", GgufValue::array(GgufType::F32, {0.5f, -0.25f}));
  w.set("empty", GgufValue::array(GgufType::U8, {}));
  std::string path = tmp_path("meta.gguf");
  w.write(path);
  GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(f.get("u8"), GgufValue(uint8_t(200)));
  EXPECT_EQ(f.get("i8").type(), GgufType::I8);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get("u16").type(), GgufType::U16);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000ll);
  EXPECT_EQ(f.get("u32").type(), GgufType::U32);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_float("f32"), 1.5);
  EXPECT_EQ(f.get("f32").type(), GgufType::F32);
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_string("str"), "héllo");
  EXPECT_EQ(f.get("u64"), GgufValue(uint64_t(1) << 63));
  EXPECT_EQ(f.get_int("i64"), -(int64_t(1) << 62));
  EXPECT_EQ(f.get_float("f64"), 3.141592653589793);
  const GgufArray& s = f.get_array("strs");
  EXPECT_EQ(s.elem, GgufType::STRING);
  ASSERT_EQ(s.items.size(), 3u);
  EXPECT_EQ(std::get<std::string>(s.items[2].v), "ccc");
  EXPECT_EQ(std::get<std::string>(s.items[1].v), "");
  const GgufArray& n = f.get_array("nested");
  ASSERT_EQ(n.items.size(), 2u);
  EXPECT_EQ(std::get<GgufArray>(n.items[0].v).items[1], GgufValue(int32_t(-2)));
  EXPECT_TRUE(std::get<GgufArray>(n.items[1].v).items.empty());
  EXPECT_EQ(f.get("f32s"), GgufValue::array(GgufType::F32, {0.5f, -0.25f}));
  EXPECT_EQ(f.get_array("empty").items.size(), 0u);
  EXPECT_TRUE(f.tensors().empty());
}

TEST(Gguf, GetterErrorsNameTheKey) {
  GgufFile f = GgufFile::from_bytes(small_file(), "x.gguf");
  std::string m = throws_format([&] { f.get_string("nope"); });
  EXPECT_NE(m.find("'nope'"), std::string::npos) << m;
  EXPECT_NE(m.find("x.gguf"), std::string::npos) << m;
  m = throws_format([&] { f.get_int("general.name"); });
  EXPECT_NE(m.find("general.name"), std::string::npos) << m;
  EXPECT_NE(m.find("integer"), std::string::npos) << m;
  throws_format([&] { f.get_float("general.name"); });
  throws_format([&] { f.get_array("general.name"); });
  throws_format([&] { f.get_bool("general.name"); });
  m = throws_format([&] { f.get_tensor("missing"); });
  EXPECT_NE(m.find("missing"), std::string::npos) << m;
}

TEST(Gguf, FloatTensorsRoundTripBitExact) {
  Generator g(7);
  Tensor a = Tensor::randn({3, 5}, g);
  Tensor b = Tensor::randn({2, 3, 4}, g).to(DType::F16);
  Tensor c = Tensor::randn({7}, g).to(DType::BF16);
  Tensor d = Tensor::randn({4, 3}, g).transpose(0, 1);  // non-contiguous input
  Tensor e = Tensor::randn({1, 2, 1, 3}, g);
  GgufWriter w;
  w.set("general.alignment", uint32_t(64));
  w.add_tensor("a", a);
  w.add_tensor("b", b);
  w.add_tensor("c", c);
  w.add_tensor("d", d);
  w.add_tensor("e", e);
  std::string path = tmp_path("float.gguf");
  w.write(path);
  GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.alignment(), 64u);
  ASSERT_EQ(f.tensors().size(), 5u);
  EXPECT_EQ(f.info("b").type, GgmlType::F16);
  EXPECT_EQ(f.info("b").shape, (Shape{2, 3, 4}));
  EXPECT_EQ(f.info("c").type, GgmlType::BF16);
  for (const auto& ti : f.tensors()) EXPECT_EQ(ti.offset % 64, 0u) << ti.name;
  auto same_bytes = [](const Tensor& x, const Tensor& y) {
    Tensor xc = x.contiguous(), yc = y.contiguous();
    return xc.dtype() == yc.dtype() && xc.shape() == yc.shape() &&
           std::memcmp(xc.raw_data(), yc.raw_data(), xc.nbytes()) == 0;
  };
  EXPECT_TRUE(same_bytes(f.get_tensor("a"), a));
  EXPECT_TRUE(same_bytes(f.get_tensor("b", DType::F16), b));
  EXPECT_TRUE(same_bytes(f.get_tensor("c", DType::BF16), c));
  EXPECT_TRUE(same_bytes(f.get_tensor("d"), d));
  EXPECT_TRUE(same_bytes(f.get_tensor("e"), e));
  EXPECT_TRUE(same_bytes(f.get_tensor("b"), b.to(DType::F32)));  // f16 -> f32 widening is exact
  EXPECT_TRUE(same_bytes(f.get_tensor("c"), c.to(DType::F32)));
  EXPECT_EQ(f.raw("a").size(), 15u * 4);
}

TEST(Gguf, GgmlOrderOnDisk) {
  std::string s = small_file();
  uint64_t d0, d1;
  std::memcpy(&d0, s.data() + kNDimsAt + 4, 8);
  std::memcpy(&d1, s.data() + kNDimsAt + 12, 8);
  EXPECT_EQ(d0, 4u);  // innermost first
  EXPECT_EQ(d1, 2u);
  uint32_t nd;
  std::memcpy(&nd, s.data() + kNDimsAt, 4);
  EXPECT_EQ(nd, 2u);
  EXPECT_EQ(s.size(), 160u);  // 101 bytes of header padded to 128, then 32 bytes of data
  EXPECT_EQ(s.substr(0, 4), "GGUF");
}

TEST(Quant, TablesAndNames) {
  EXPECT_EQ(ggml_type_size(GgmlType::Q4_0), 18u);
  EXPECT_EQ(ggml_type_size(GgmlType::Q8_0), 34u);
  EXPECT_EQ(ggml_type_size(GgmlType::Q4_K), 144u);
  EXPECT_EQ(ggml_type_size(GgmlType::Q6_K), 210u);
  EXPECT_EQ(ggml_block_size(GgmlType::Q4_K), 256);
  EXPECT_EQ(ggml_block_size(GgmlType::BF16), 1);
  EXPECT_STREQ(ggml_type_name(GgmlType::Q6_K), "q6_K");
  EXPECT_STREQ(ggml_type_name(uint32_t(3)), "unknown");
  EXPECT_FALSE(ggml_type_known(3));
  EXPECT_EQ(ggml_row_size(GgmlType::Q8_0, 64), 68u);
  EXPECT_THROW(ggml_row_size(GgmlType::Q8_0, 33), ValueError);
}

TEST(Quant, Q8_0KnownAnswer) {
  // amax 127 -> d = 1 (f16 0x3C00); q = round-half-away(x).
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = float(j - 16);
  x[0] = 2.5f;
  x[1] = -2.5f;
  x[2] = 0.49f;
  x[31] = 127.f;
  uint8_t b[34];
  quantize_row_q8_0(x, b, 32);
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[1], 0x3C);
  EXPECT_EQ(int8_t(b[2]), 3);
  EXPECT_EQ(int8_t(b[3]), -3);
  EXPECT_EQ(int8_t(b[4]), 0);
  for (int j = 3; j < 31; ++j) EXPECT_EQ(int8_t(b[2 + j]), j - 16) << j;
  EXPECT_EQ(int8_t(b[33]), 127);
  float y[32];
  dequantize_row_q8_0(b, y, 32);
  EXPECT_EQ(y[0], 3.f);
  EXPECT_EQ(y[31], 127.f);
  EXPECT_EQ(y[10], -6.f);
}

TEST(Quant, Q4_0KnownAnswer) {
  // max-magnitude value -8 -> d = -8/-8 = 1; q = min(15, trunc(x + 8.5)); byte j = q[j] | q[j+16] << 4.
  float x[32] = {};
  x[0] = -8.f;
  for (int j = 1; j < 16; ++j) x[j] = float(j - 8);
  x[16] = 0.4f;   // trunc(8.9) = 8
  x[17] = -0.6f;  // trunc(7.9) = 7
  x[18] = 7.6f;   // trunc(16.1) = 16 -> clamped to 15
  uint8_t b[18];
  quantize_row_q4_0(x, b, 32);
  EXPECT_EQ(b[0], 0x00);
  EXPECT_EQ(b[1], 0x3C);
  EXPECT_EQ(b[2 + 0], 0x80);
  EXPECT_EQ(b[2 + 1], 0x71);
  EXPECT_EQ(b[2 + 2], 0xF2);
  for (int j = 3; j < 16; ++j) EXPECT_EQ(b[2 + j], 0x80 | j) << j;
  float y[32];
  dequantize_row_q4_0(b, y, 32);
  EXPECT_EQ(y[0], -8.f);
  EXPECT_EQ(y[5], -3.f);
  EXPECT_EQ(y[16], 0.f);
  EXPECT_EQ(y[17], -1.f);
  EXPECT_EQ(y[18], 7.f);
  // A positive extreme gives a negative d: 8 -> q 0 -> (0-8) * -1 = 8.
  float z[32] = {};
  z[3] = 8.f;
  quantize_row_q4_0(z, b, 32);
  dequantize_row_q4_0(b, y, 32);
  EXPECT_EQ(y[3], 8.f);
  EXPECT_EQ(y[4], 0.f);
}

TEST(Quant, ZeroBlocks) {
  std::vector<float> x(256, 0.f), y(256, 1.f);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    std::string b(ggml_row_size(t, 256), '\x55');
    ggml_quantize(t, x.data(), b.data(), 256);
    ggml_dequantize(t, b.data(), y.data(), 256);
    for (float v : y) ASSERT_EQ(v, 0.f) << ggml_type_name(t);
  }
}

TEST(Quant, ErrorBoundsPerBlock) {
  const int64_t n = 256 * 8;
  std::vector<float> x = randn_vec(n, 3, 2.f), y(n);
  x[5] = 40.f;  // an outlier block
  std::string b(ggml_row_size(GgmlType::Q8_0, n), '\0');
  quantize_row_q8_0(x.data(), b.data(), n);
  dequantize_row_q8_0(b.data(), y.data(), n);
  for (int64_t blk = 0; blk < n / 32; ++blk) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
    float d = amax / 127.f;
    for (int j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(x[blk * 32 + j] - y[blk * 32 + j]), d / 2 + amax / 1024) << blk << " " << j;
  }
  b.assign(ggml_row_size(GgmlType::Q4_0, n), '\0');
  quantize_row_q4_0(x.data(), b.data(), n);
  dequantize_row_q4_0(b.data(), y.data(), n);
  for (int64_t blk = 0; blk < n / 32; ++blk) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
    float d = amax / 8.f;  // values of the extreme's sign lie within d/2; the other side may clamp at 7d
    for (int j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(x[blk * 32 + j] - y[blk * 32 + j]), d + amax / 512) << blk << " " << j;
  }
  // K-quants: relative RMS error over gaussian data, and a loose per-element bound.
  for (auto [t, rms_max] : {std::pair{GgmlType::Q4_K, 0.13}, std::pair{GgmlType::Q6_K, 0.04}}) {
    std::vector<float> g = randn_vec(n, 11);
    b.assign(ggml_row_size(t, n), '\0');
    ggml_quantize(t, g.data(), b.data(), n);
    ggml_dequantize(t, b.data(), y.data(), n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; ++i) {
      se += double(g[i] - y[i]) * (g[i] - y[i]);
      sx += double(g[i]) * g[i];
    }
    EXPECT_LT(std::sqrt(se / sx), rms_max) << ggml_type_name(t);
    for (int64_t blk = 0; blk < n / 256; ++blk) {
      float amax = 0;
      for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(g[blk * 256 + j]));
      float step = t == GgmlType::Q4_K ? 2 * amax / 15 : amax / 31;
      for (int j = 0; j < 256; ++j) ASSERT_LE(std::fabs(g[blk * 256 + j] - y[blk * 256 + j]), step) << blk;
    }
  }
}

TEST(Quant, Q4_KScalePackingHighBits) {
  // Hand-packed block: d = 1, dmin = 1; sub-block 5 has scale 37 (0b100101) and min 50 (0b110010):
  // low nibbles in scales[9] = 0x25 & 0xF | (50 & 0xF) << 4 = 0x25, high bits in scales[1] and scales[5].
  uint8_t b[144] = {};
  uint16_t one = f32_to_f16(1.f);
  std::memcpy(b, &one, 2);
  std::memcpy(b + 2, &one, 2);
  b[4 + 9] = uint8_t((37 & 0xF) | ((50 & 0xF) << 4));
  b[4 + 1] = uint8_t((37 >> 4) << 6);
  b[4 + 5] = uint8_t((50 >> 4) << 6);
  b[4 + 0] = 3;  // sub-block 0: scale 3, min 0
  // q for element 0 (sub-block 0, low nibble of byte 0) = 2; element 160 is sub-block 5: 64*2 + 32 + 0,
  // the high nibble of byte 16 + 64 + 0.
  b[16 + 0] = 0x02;
  b[16 + 64] = 0x70;
  float y[256];
  dequantize_row_q4_K(b, y, 256);
  EXPECT_EQ(y[0], 6.f);              // 1*3*2 - 0
  EXPECT_EQ(y[160], 37.f * 7 - 50);  // 1*37*7 - 1*50
  EXPECT_EQ(y[161], -50.f);
  EXPECT_EQ(y[1], 0.f);
}

TEST(Quant, Q6_KLayout) {
  // d = 0.5; scale of sub-block 9 (elements 144..159) = -4; element 150 lies in the second half
  // (h = 1, l = 22 = 150 - 128), first quarter: low nibble of ql[64 + 22], bits 0-1 of qh[32 + 22].
  uint8_t b[210] = {};
  uint16_t half = f32_to_f16(0.5f);
  std::memcpy(b + 208, &half, 2);
  for (int i = 0; i < 128; ++i) b[i] = 0;    // q low nibbles 0
  for (int i = 0; i < 64; ++i) b[128 + i] = 0xAA;  // high bits 2 -> q = 32 -> value 0
  b[192 + 9] = uint8_t(int8_t(-4));
  b[64 + 22] = 0x05;       // low nibble 5
  b[128 + 32 + 22] = 0xA9;  // bits 0-1 = 1 -> q = 16 + 5 = 21 -> 21 - 32 = -11
  float y[256];
  dequantize_row_q6_K(b, y, 256);
  EXPECT_EQ(y[150], 0.5f * -4 * -11);
  EXPECT_EQ(y[149], 0.f);
  EXPECT_EQ(y[0], 0.f);
}

TEST(Gguf, QuantizedTensorsRoundTrip) {
  const int64_t rows = 3, cols = 512;
  std::vector<float> v = randn_vec(rows * cols, 5);
  Tensor t = Tensor::from_vector(v, {rows, cols});
  GgufWriter w;
  for (GgmlType q : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K})
    w.add_tensor(ggml_type_name(q), t, q);
  std::string raw(ggml_row_size(GgmlType::Q8_0, 64), '\0');
  quantize_row_q8_0(v.data(), raw.data(), 64);
  w.add_quantized("pre", {2, 32}, GgmlType::Q8_0, raw);
  EXPECT_THROW(w.add_quantized("bad", {2, 32}, GgmlType::Q8_0, raw + "x"), ValueError);
  EXPECT_THROW(w.add_tensor("odd", Tensor::zeros({2, 33}), GgmlType::Q4_0), ValueError);
  EXPECT_THROW(w.add_tensor("pre", t), ValueError);
  std::string path = tmp_path("quant.gguf");
  w.write(path);
  GgufFile f = GgufFile::open(path);
  for (GgmlType q : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    const auto& ti = f.info(ggml_type_name(q));
    EXPECT_EQ(ti.type, q);
    EXPECT_EQ(ti.shape, (Shape{rows, cols}));
    EXPECT_EQ(ti.nbytes, ggml_row_size(q, rows * cols));
    std::vector<float> expect(rows * cols);
    ggml_dequantize(q, f.raw(ti.name).data(), expect.data(), rows * cols);
    Tensor got = f.get_tensor(ti.name);
    ASSERT_EQ(got.shape(), (Shape{rows, cols}));
    EXPECT_EQ(std::memcmp(got.raw_data(), expect.data(), expect.size() * 4), 0);
    Tensor h = f.get_tensor(ti.name, DType::F16);
    EXPECT_EQ(h.dtype(), DType::F16);
  }
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.raw("pre").data()), f.raw("pre").size()), raw);
}

TEST(Gguf, TruncatedAtEveryByte) {
  std::string s = small_file();
  GgufFile ok = GgufFile::from_bytes(s);
  EXPECT_EQ(ok.get_string("general.name"), "tiny");
  for (size_t n = 0; n < s.size(); ++n) {
    std::string p = s.substr(0, n);
    try {
      GgufFile::from_bytes(p);
      ADD_FAILURE() << "prefix of " << n << " bytes accepted";
    } catch (const FormatError&) {
    }
  }
  std::string path = tmp_path("trunc.gguf");
  for (size_t n : {size_t(0), size_t(3), size_t(30), size_t(100), s.size() - 1}) {
    {
      FILE* fp = std::fopen(path.c_str(), "wb");
      ASSERT_NE(fp, nullptr);
      if (n) std::fwrite(s.data(), 1, n, fp);
      std::fclose(fp);
    }
    EXPECT_THROW(GgufFile::open(path), FormatError) << n;
  }
  EXPECT_THROW(GgufFile::open(tmp_path("does_not_exist.gguf")), IoError);
}

TEST(Gguf, CorruptedFields) {
  const std::string s = small_file();
  auto expect_msg = [](std::string bytes, const std::vector<std::string>& parts) {
    std::string m = throws_format([&] { GgufFile::from_bytes(bytes, "c.gguf"); });
    for (const auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  };
  std::string b = s;
  b[0] = 'X';
  expect_msg(b, {"c.gguf", "magic"});
  b = s;
  put_u32(b, 4, 1);
  expect_msg(b, {"version 1"});
  b = s;
  put_u32(b, 4, 2);
  EXPECT_EQ(GgufFile::from_bytes(b).version(), 2u);  // v2 has the same layout
  b = s;
  put_u64(b, 8, uint64_t(1) << 40);
  expect_msg(b, {"tensor count"});
  b = s;
  put_u64(b, 16, 2000000);
  expect_msg(b, {"metadata count"});
  b = s;
  put_u64(b, 24, uint64_t(1) << 60);  // key length
  expect_msg(b, {"key", "length"});
  b = s;
  put_u64(b, 24, 200);  // key length past the end of the 160-byte file
  expect_msg(b, {"truncated", "offset 32"});
  b = s;
  put_u32(b, 44, 13);  // value type
  expect_msg(b, {"general.name", "value type 13"});
  b = s;
  put_u32(b, kTypeAt, 3);  // removed ggml type Q4_2
  expect_msg(b, {"tensor 't'", "ggml type 3", "offset 89"});
  b = s;
  put_u32(b, kTypeAt, 8);  // q8_0 needs the innermost dim to be a multiple of 32
  expect_msg(b, {"tensor 't'", "block size"});
  b = s;
  put_u32(b, kNDimsAt, 5);
  expect_msg(b, {"n_dims 5"});
  b = s;
  put_u64(b, kNDimsAt + 4, 0);
  expect_msg(b, {"dimension 0"});
  b = s;
  put_u64(b, kNDimsAt + 4, uint64_t(1) << 40);
  put_u64(b, kNDimsAt + 12, uint64_t(1) << 40);
  expect_msg(b, {"overflow"});
  b = s;
  put_u64(b, kOffsetAt, 64);
  expect_msg(b, {"tensor 't'", "past the end"});
  b = s;
  put_u64(b, kOffsetAt, 4);
  expect_msg(b, {"tensor 't'", "alignment"});
  b = s;
  put_u64(b, kNDimsAt + 4, 8);  // 16 elements: 64 bytes in a 32-byte data section
  expect_msg(b, {"past the end"});
}

TEST(Gguf, DuplicatesAndAlignmentRules) {
  // Two tensors with the same name, written by hand from a one-tensor file.
  GgufWriter w;
  w.add_tensor("a", Tensor::zeros({8}));
  w.add_tensor("b", Tensor::zeros({8}));
  std::string s = w.bytes();
  size_t at = s.find("b", 24);
  ASSERT_NE(at, std::string::npos);
  s[at] = 'a';
  std::string m = throws_format([&] { GgufFile::from_bytes(s); });
  EXPECT_NE(m.find("duplicate tensor name"), std::string::npos) << m;

  GgufWriter k;
  k.set("general.alignment", uint32_t(16));
  k.set("general.alignmenu", uint32_t(16));
  s = k.bytes();
  at = s.find("general.alignmenu");
  s[at + 16] = 't';
  m = throws_format([&] { GgufFile::from_bytes(s); });
  EXPECT_NE(m.find("duplicate key"), std::string::npos) << m;

  GgufWriter a;
  a.set("general.alignment", uint32_t(16));
  s = a.bytes();
  at = s.find("general.alignment") + 17 + 4;
  put_u32(s, at, 24);
  m = throws_format([&] { GgufFile::from_bytes(s); });
  EXPECT_NE(m.find("power of two"), std::string::npos) << m;
  put_u32(s, at - 4, uint32_t(GgufType::I32));
  m = throws_format([&] { GgufFile::from_bytes(s); });
  EXPECT_NE(m.find("u32"), std::string::npos) << m;
  EXPECT_THROW(a.set("general.alignment", uint32_t(12)), ValueError);
  EXPECT_THROW(a.set("general.alignment", int32_t(16)), ValueError);
  EXPECT_THROW(GgufValue::array(GgufType::I32, {1.f}), ValueError);
}

TEST(Gguf, HugeArrayCountRejected) {
  GgufWriter w;
  w.set("arr", GgufValue::array(GgufType::U64, {uint64_t(1)}));
  std::string s = w.bytes();
  size_t at = 24 + 8 + 3 + 4 + 4;  // key "arr", value type, element type -> count
  put_u64(s, at, uint64_t(1) << 61);
  std::string m = throws_format([&] { GgufFile::from_bytes(s); });
  EXPECT_NE(m.find("'arr'"), std::string::npos) << m;
  EXPECT_NE(m.find("limit"), std::string::npos) << m;
  put_u64(s, at, 1000);  // under the limit but past the end: 1000 u64 need 8000 bytes
  m = throws_format([&] { GgufFile::from_bytes(s); });
  EXPECT_NE(m.find("array of 1000 u64"), std::string::npos) << m;
  put_u64(s, at, 1);
  put_u32(s, at - 4, uint32_t(GgufType::BOOL));
  s[at + 8] = 2;
  m = throws_format([&] { GgufFile::from_bytes(s); });
  EXPECT_NE(m.find("bool"), std::string::npos) << m;
}

TEST(Gguf, RichFileTruncationAndByteCorruption) {
  // Arrays of strings, nested arrays and a Q4_K tensor first; the last tensor is 32 bytes so the
  // file has no trailing padding and every proper prefix is invalid.
  GgufWriter w;
  w.set("tok", GgufValue::array(GgufType::STRING, {"<s>", "a", "bc"}));
  w.set("nest", GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::F64, {1.0, 2.0})}));
  w.set("flag", false);
  std::vector<float> v = randn_vec(256, 9);
  w.add_tensor("q", Tensor::from_vector(v, {1, 256}), GgmlType::Q4_K);
  w.add_tensor("h", Tensor::from_vector(std::vector<float>(16, 0.5f), {16}), GgmlType::F16);
  const std::string s = w.bytes();
  GgufFile full = GgufFile::from_bytes(s);
  EXPECT_EQ(full.tensors().size(), 2u);
  for (size_t n = 0; n < s.size(); ++n)
    EXPECT_THROW(GgufFile::from_bytes(s.substr(0, n)), FormatError) << "prefix " << n;
  // Every single-byte corruption either parses (and then reads in bounds) or gives a FormatError.
  size_t accepted = 0;
  for (size_t i = 0; i < s.size(); ++i)
    for (uint8_t x : {uint8_t(0xFF), uint8_t(0x00), uint8_t(0x80)}) {
      std::string b = s;
      b[i] = char(x);
      try {
        GgufFile f = GgufFile::from_bytes(b);
        for (const auto& ti : f.tensors()) (void)f.get_tensor(ti.name);
        ++accepted;
      } catch (const FormatError&) {
      }
    }
  EXPECT_GT(accepted, 0u);
}

// ---- streamed writing: lazy tensors and the atomic file ----

namespace {
std::vector<std::string> files_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

TEST(GgufWriterLazy, SameFileAsEagerAndProducedAtWriteTime) {
  Generator g(5);
  Tensor a = Tensor::randn({4, 64}, g), b = Tensor::randn({3, 32}, g);
  GgufWriter eager, lazy;
  for (GgufWriter* w : {&eager, &lazy}) w->set("general.name", "lazy");
  eager.add_tensor("a", a, GgmlType::Q8_0);
  eager.add_tensor("b", b);
  std::vector<std::string> calls;
  lazy.add_lazy("a", a.shape(), GgmlType::Q8_0, [&] {
    calls.push_back("a");
    return GgufWriter::encode("a", a, GgmlType::Q8_0);
  });
  lazy.add_lazy("b", b.shape(), GgmlType::F32, [&] {
    calls.push_back("b");
    return GgufWriter::encode("b", b);
  });
  EXPECT_TRUE(calls.empty()) << "nothing is produced before the file is written";
  const std::string path = tmp_path("lazy.gguf");
  lazy.write(path);
  EXPECT_EQ(calls, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_text_file(path), eager.bytes());
  EXPECT_EQ(lazy.bytes(), eager.bytes());
  GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.info("a").type, GgmlType::Q8_0);
  EXPECT_EQ(f.get_tensor("b").to_vector<float>(), b.to_vector<float>());
  // Adding checks the shape and type up front, as add_quantized does.
  EXPECT_THROW(lazy.add_lazy("c", {3, 33}, GgmlType::Q8_0, [] { return std::string(); }), ValueError);
  EXPECT_THROW(lazy.add_lazy("a", {1}, GgmlType::F32, [] { return std::string(4, '\0'); }), ValueError);
}

TEST(GgufWriterLazy, AFailingProducerLeavesTheOldFile) {
  auto dir = std::filesystem::temp_directory_path() / "lmlab_gguf_lazy_fail";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.gguf").string();
  write_file_atomic(path, "old");
  GgufWriter w;
  w.add_tensor("ok", Tensor::from_vector(std::vector<float>{1, 2}, {2}));
  w.add_lazy("short", {8}, GgmlType::F32, [] { return std::string(16, '\0'); });  // 32 bytes needed
  try {
    w.write(path);
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'short': produced 16 bytes but [8] x f32 needs 32"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(read_text_file(path), "old");
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"m.gguf"})) << "the temp file is removed";
  GgufWriter t;
  t.add_lazy("boom", {2}, GgmlType::F32, []() -> std::string { throw IoError("[test] source vanished"); });
  EXPECT_THROW(t.write(path), IoError);
  EXPECT_EQ(read_text_file(path), "old");
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"m.gguf"}));
}

TEST(AtomicFile, PiecesThenCommitOrNothing) {
  auto dir = std::filesystem::temp_directory_path() / "lmlab_atomic_file";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "f.bin").string();
  {
    AtomicFile f(path);
    f.write("abc");
    f.write(std::string(3, 'x'));
    EXPECT_EQ(f.written(), 6u);
    EXPECT_FALSE(std::filesystem::exists(path)) << "nothing is visible before commit";
    f.commit();
    EXPECT_THROW(f.write("late"), IoError);
  }
  EXPECT_EQ(read_text_file(path), "abcxxx");
  {
    AtomicFile f(path);
    f.write("partial");
  }  // abandoned: the old file stays, the temp file goes
  EXPECT_EQ(read_text_file(path), "abcxxx");
  EXPECT_EQ(files_in(dir), (std::vector<std::string>{"f.bin"}));
  EXPECT_THROW(AtomicFile((dir / "no/such/dir/f").string()), IoError);
}
