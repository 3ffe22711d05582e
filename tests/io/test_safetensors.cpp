// safetensors: round trip, zero-copy reads, and every validation rule of the format.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"

using namespace lmlab;

namespace {
std::string make(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  return s + header + std::string(data_bytes, '\0');
}
}  // namespace

TEST(Safetensors, RoundTrip) {
  Generator g(1);
  Tensor a = Tensor::randn({3, 5}, g);
  Tensor b = Tensor::arange(7, DType::I64);
  Tensor c = Tensor::randn({4, 2}, g).to(DType::BF16);
  Tensor d = Tensor::randn({2, 3}, g).transpose(0, 1);  // non-contiguous input
  auto dir = std::filesystem::temp_directory_path() / "lmlab_st_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / "x.safetensors").string();
  save_safetensors(path, {{"a", a}, {"b", b}, {"c", c}, {"d", d}}, {{"format", "pt"}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.names().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.get("a").to_vector<float>(), a.to_vector<float>());
  EXPECT_EQ(f.get("b").to_vector<int64_t>(), b.to_vector<int64_t>());
  EXPECT_EQ(f.get("c").to(DType::F32).to_vector<float>(), c.to(DType::F32).to_vector<float>());
  EXPECT_EQ(f.get("d").to_vector<float>(), d.to_vector<float>());
  EXPECT_THROW(f.get("nope"), FormatError);
  auto all = load_safetensors(path);
  EXPECT_EQ(all.at("a").shape(), (Shape{3, 5}));
  std::filesystem::remove_all(dir);
}

TEST(Safetensors, RejectsMalformed) {
  EXPECT_THROW(SafetensorsFile::from_bytes("abc"), FormatError);                 // too short
  std::string s(8, '\0');
  uint64_t big = 1ull << 40;
  std::memcpy(s.data(), &big, 8);
  EXPECT_THROW(SafetensorsFile::from_bytes(s), FormatError);                     // header length too large
  EXPECT_THROW(SafetensorsFile::from_bytes(make("{", 0)), FormatError);          // bad JSON
  EXPECT_THROW(SafetensorsFile::from_bytes(make("[]", 0)), FormatError);         // not an object
  EXPECT_THROW(SafetensorsFile::from_bytes(
                   make(R"({"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", 4)), FormatError);  // dtype
  EXPECT_THROW(SafetensorsFile::from_bytes(
                   make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4)), FormatError);  // size
  EXPECT_THROW(SafetensorsFile::from_bytes(
                   make(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", 4)), FormatError);  // oob
  EXPECT_THROW(SafetensorsFile::from_bytes(make(
                   R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                   8)), FormatError);  // overlap
  EXPECT_THROW(SafetensorsFile::from_bytes(make(R"({"__metadata__":{"k":1}})", 0)), FormatError);
  EXPECT_THROW(SafetensorsFile::from_bytes(
                   make(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)), FormatError);
  EXPECT_THROW(SafetensorsFile::open("/nonexistent/file.safetensors"), IoError);
  auto ok = SafetensorsFile::from_bytes(make(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4));
  EXPECT_EQ(ok.get("a").numel(), 1);
}
