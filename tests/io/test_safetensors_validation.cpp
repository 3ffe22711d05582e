// safetensors single-file validation: one crafted bad file per rule of the format, each expecting a
// FormatError that names the file and the tensor or field at fault.
#include <gtest/gtest.h>

#include <cstring>

#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;

namespace {

const char* kFile = "bad.safetensors";

std::string with_len(uint64_t n, const std::string& rest) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s + rest;
}
std::string make(const std::string& header, size_t data_bytes) {
  return with_len(header.size(), header) + std::string(data_bytes, '\0');
}
// Expects parsing `bytes` to fail with a message naming kFile and every one of `parts`.
void expect_bad(const std::string& bytes, std::initializer_list<std::string> parts) {
  try {
    SafetensorsFile::from_bytes(bytes, kFile);
    ADD_FAILURE() << "expected a FormatError mentioning " << *parts.begin();
  } catch (const FormatError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(kFile), std::string::npos) << m;
    for (const auto& p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
  }
}
std::string t(const std::string& name, const std::string& dtype, const std::string& shape, size_t b, size_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

}  // namespace

TEST(SafetensorsValidation, HeaderLength) {
  expect_bad("abc", {"too short"});
  expect_bad(with_len(1ull << 40, "{}"), {"header length", "exceeds the limit"});
  expect_bad(with_len(3, "{}"), {"header length 3", "runs past the end"});
  expect_bad(with_len(~0ull, "{}"), {"header length"});  // would wrap n + 8
  expect_bad(with_len(0, ""), {"header", "not valid JSON"});
}

TEST(SafetensorsValidation, JsonWellFormed) {
  expect_bad(make("{\"a\":", 0), {"header", "not valid JSON"});
  expect_bad(make("[1,2]", 0), {"header must be a JSON object"});
  expect_bad(make("{\"a\":{}}\xff", 0), {"not valid JSON"});
  // nlohmann keeps the last of two equal keys; the format has one meaning per name
  expect_bad(make("{" + t("w", "F32", "[1]", 0, 4) + "," + t("w", "F32", "[1]", 4, 8) + "}", 8),
             {"key 'w' twice"});
  expect_bad(make(R"({"__metadata__":{"k":"a","k":"b"}})", 0), {"key 'k' twice"});
}

TEST(SafetensorsValidation, TensorEntryFields) {
  expect_bad(make(R"({"w":[1]})", 0), {"tensor 'w'", "JSON object"});
  expect_bad(make(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), {"tensor 'w'", "no dtype"});
  expect_bad(make(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4), {"tensor 'w'", "no shape"});
  expect_bad(make(R"({"w":{"dtype":"F32","shape":[1]}})", 4), {"tensor 'w'", "no data_offsets"});
  expect_bad(make(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4), {"tensor 'w'", "dtype"});
  expect_bad(make(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4), {"tensor 'w'", "shape"});
}

TEST(SafetensorsValidation, DtypeKnown) {
  expect_bad(make("{" + t("w", "Q9", "[1]", 0, 4) + "}", 4), {"tensor 'w'", "unsupported dtype 'Q9'"});
  expect_bad(make("{" + t("w", "f32", "[1]", 0, 4) + "}", 4), {"tensor 'w'", "'f32'"});  // names are upper case
}

TEST(SafetensorsValidation, ShapeEntries) {
  expect_bad(make("{" + t("w", "F32", "[-1]", 0, 4) + "}", 4), {"tensor 'w'", "non-negative integers"});
  expect_bad(make("{" + t("w", "F32", "[1.5]", 0, 4) + "}", 4), {"tensor 'w'", "non-negative integers"});
  expect_bad(make("{" + t("w", "F32", "[\"2\"]", 0, 4) + "}", 4), {"tensor 'w'", "non-negative integers"});
  expect_bad(make("{" + t("w", "F32", "[18446744073709551615]", 0, 4) + "}", 4), {"tensor 'w'", "overflows"});
}

TEST(SafetensorsValidation, ElementCountCannotWrap) {
  // 2^61 f64 elements are 2^64 bytes, which a 64-bit product wraps to 0 = end - begin; the count must be
  // bounded by the data section instead.
  expect_bad(make("{" + t("w", "F64", "[2305843009213693952]", 0, 0) + "}", 0), {"tensor 'w'", "needs more bytes"});
  // the input the previous check (dims <= 2^48, count <= 2^62) accepted as a 0-byte tensor
  expect_bad(make("{" + t("w", "F64", "[4294967296,536870912]", 0, 0) + "}", 0), {"tensor 'w'", "needs more bytes"});
  // a zero dimension makes any other dimension harmless
  auto ok = SafetensorsFile::from_bytes(make("{" + t("w", "F32", "[0,4294967296]", 0, 0) + "}", 0), kFile);
  EXPECT_EQ(ok.get("w").numel(), 0);
}

TEST(SafetensorsValidation, DataOffsets) {
  expect_bad(make(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4), {"tensor 'w'", "data_offsets"});
  expect_bad(make(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", 4), {"tensor 'w'", "data_offsets"});
  expect_bad(make(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":"0,4"}})", 4), {"tensor 'w'", "data_offsets"});
  expect_bad(make("{" + t("w", "F32", "[1]", 8, 4) + "}", 8), {"tensor 'w'", "end before begin"});
  expect_bad(make("{" + t("w", "F32", "[1]", 4, 8) + "}", 4), {"tensor 'w'", "outside the 4-byte data section"});
  expect_bad(make("{" + t("w", "F32", "[1]", 0, 8) + "}", 8), {"tensor 'w'", "hold 8 bytes", "needs 4"});
  expect_bad(make("{" + t("w", "F32", "[1]", 0, 0) + "}", 4), {"tensor 'w'", "hold 0 bytes", "needs 4"});
}

TEST(SafetensorsValidation, NoOverlapsNoHoles) {
  expect_bad(make("{" + t("a", "F32", "[2]", 0, 8) + "," + t("b", "F32", "[1]", 4, 8) + "}", 8),
             {"tensor 'b'", "overlap tensor 'a'"});
  expect_bad(make("{" + t("a", "F32", "[1]", 0, 4) + "," + t("b", "F32", "[1]", 8, 12) + "}", 12),
             {"bytes [4, 8)", "hole before tensor 'b'"});
  expect_bad(make("{" + t("a", "F32", "[1]", 4, 8) + "}", 8), {"bytes [0, 4)", "tensor 'a'"});
  expect_bad(make("{" + t("a", "F32", "[1]", 0, 4) + "}", 6), {"data section has 6 bytes", "cover only 4"});
  // zero-sized tensors may sit anywhere inside, including at the same offset
  auto ok = SafetensorsFile::from_bytes(
      make("{" + t("a", "F32", "[1]", 0, 4) + "," + t("e", "F32", "[0]", 4, 4) + "," + t("f", "U8", "[0,3]", 4, 4) + "}",
           4),
      kFile);
  EXPECT_EQ(ok.names().size(), 3u);
  EXPECT_EQ(ok.data_bytes(), 4u);
}

TEST(SafetensorsValidation, MetadataStringToString) {
  expect_bad(make(R"({"__metadata__":[]})", 0), {"__metadata__ must be an object"});
  expect_bad(make(R"({"__metadata__":{"format":1}})", 0), {"__metadata__ value for 'format'", "string"});
  expect_bad(make(R"({"__metadata__":{"format":null}})", 0), {"'format'"});
  auto ok = SafetensorsFile::from_bytes(make(R"({"__metadata__":{"format":"pt"}})", 0), kFile);
  EXPECT_EQ(ok.metadata().at("format"), "pt");
  EXPECT_TRUE(ok.names().empty());
}

TEST(SafetensorsValidation, ErrorsNameTheFileOnDisk) {
  lmlab::test::TempDir tmp("st_valid");
  std::string p = tmp / "w.safetensors";
  write_file_atomic(p, make("{" + t("w", "Q9", "[1]", 0, 4) + "}", 4));
  expect_error<FormatError>([&] { SafetensorsFile::open(p); }, p);
  expect_error<IoError>([&] { SafetensorsFile::open(tmp / "absent.safetensors"); }, "absent.safetensors");
}

TEST(SafetensorsValidation, WriterAlignsEveryTensor) {
  // a 2-byte tensor first would leave the following f64 misaligned; the writer orders by element size
  Tensor h = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3}).to(DType::BF16);
  Tensor d = Tensor::from_vector(std::vector<float>{4, 5}, {2}).to(DType::F64);
  Tensor u = Tensor::from_vector(std::vector<float>{6}, {1}).to(DType::U8);
  auto f = SafetensorsFile::from_bytes(safetensors_bytes({{"h", h}, {"u", u}, {"d", d}}), kFile);
  EXPECT_EQ(f.info("d").begin, 0u);
  EXPECT_EQ(f.info("h").begin, 16u);
  EXPECT_EQ(f.info("u").begin, 22u);
  for (const char* n : {"h", "u", "d"}) {
    Tensor x = f.get(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw_data()) % dtype_size(x.dtype()), 0u) << n;
  }
  EXPECT_EQ(f.get("d").to(DType::F32).to_vector<float>(), (std::vector<float>{4, 5}));
  EXPECT_EQ(f.get("h").to(DType::F32).to_vector<float>(), (std::vector<float>{1, 2, 3}));
}
