// Sharded safetensors (model.safetensors.index.json + model-0000i-of-0000n.safetensors): writer
// round trip, the single-file folder through the same API, and every index validation rule.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;
using lmlab::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::pair<std::string, Tensor>> some_tensors() {
  Generator g(3);
  return {{"embed.weight", Tensor::randn({8, 4}, g)},              // 128 bytes
          {"layers.0.w", Tensor::randn({4, 4}, g)},                // 64
          {"layers.0.b", Tensor::randn({4}, g).to(DType::BF16)},   // 8
          {"layers.1.w", Tensor::randn({4, 4}, g)},                // 64
          {"big", Tensor::randn({50}, g)},                         // 200: over the limit alone
          {"ids", Tensor::arange(5, DType::I64)}};                 // 40
}

void expect_same(const SafetensorsShards& s, const std::vector<std::pair<std::string, Tensor>>& ts) {
  ASSERT_EQ(s.names().size(), ts.size());
  for (const auto& [n, t] : ts) {
    ASSERT_TRUE(s.contains(n)) << n;
    Tensor x = s.get(n);
    EXPECT_EQ(x.shape(), t.shape()) << n;
    EXPECT_EQ(x.dtype(), t.dtype()) << n;
    EXPECT_EQ(s.info(n).shape, t.shape()) << n;
    EXPECT_EQ(s.info(n).dtype, t.dtype()) << n;
    EXPECT_EQ(x.to(DType::F64).to_vector<double>(), t.to(DType::F64).to_vector<double>()) << n;
  }
}

void write_index(const std::string& path, const std::string& text) { write_file_atomic(path, text); }

}  // namespace

TEST(SafetensorsShards, RoundTripSharded) {
  TempDir tmp("st_shards");
  auto ts = some_tensors();
  auto written = save_safetensors_shards(tmp.path.string(), ts, 150, {{"format", "pt"}});
  // greedy split at 150 bytes: [embed] [w0 b0 w1 -> 136] [big] [ids]
  ASSERT_EQ(written.size(), 5u);
  EXPECT_EQ(written[0], "model-00001-of-00004.safetensors");
  EXPECT_EQ(written[3], "model-00004-of-00004.safetensors");
  EXPECT_EQ(written[4], kSafetensorsIndexName);
  for (const auto& w : written) EXPECT_TRUE(fs::exists(tmp.path / w)) << w;
  EXPECT_FALSE(fs::exists(tmp.path / kSafetensorsSingleName));

  auto idx = SafetensorsIndex::parse(lmlab::test::slurp(tmp.path / kSafetensorsIndexName));
  EXPECT_EQ(idx.total_size, std::optional<uint64_t>(128 + 64 + 8 + 64 + 200 + 40));
  EXPECT_EQ(idx.weight_map.at("layers.0.b"), "model-00002-of-00004.safetensors");
  EXPECT_EQ(idx.weight_map.at("big"), "model-00003-of-00004.safetensors");

  SafetensorsShards s = SafetensorsShards::open_folder(tmp.path.string());
  expect_same(s, ts);
  EXPECT_EQ(s.files().size(), 4u);
  EXPECT_EQ(s.total_bytes(), 504u);
  EXPECT_EQ(s.source(), (tmp.path / kSafetensorsIndexName).string());
  EXPECT_EQ(s.file_of("layers.1.w").path(), (tmp.path / "model-00002-of-00004.safetensors").string());
  EXPECT_EQ(s.file_of("big").metadata().at("format"), "pt");
  // zero-copy: two reads view the same bytes of the shard's mapping
  EXPECT_EQ(s.get("embed.weight").raw_data(), s.get("embed.weight").raw_data());
  expect_error<FormatError>([&] { s.get("nope"); }, "no tensor named 'nope'");
}

TEST(SafetensorsShards, SingleFileFolderAndResave) {
  TempDir tmp("st_single");
  auto ts = some_tensors();
  // first sharded, then re-saved as one file: the stale index and shards must go, or they would mislead
  save_safetensors_shards(tmp.path.string(), ts, 100);
  auto written = save_safetensors_shards(tmp.path.string(), ts, 1 << 20);
  ASSERT_EQ(written, (std::vector<std::string>{kSafetensorsSingleName}));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, (std::vector<std::string>{kSafetensorsSingleName}));
  SafetensorsShards s = SafetensorsShards::open_folder(tmp.path.string());
  expect_same(s, ts);
  EXPECT_EQ(s.files().size(), 1u);
  EXPECT_EQ(s.source(), (tmp.path / kSafetensorsSingleName).string());
  // and back to shards: model.safetensors (which readers prefer) must be removed
  save_safetensors_shards(tmp.path.string(), ts, 100);
  EXPECT_FALSE(fs::exists(tmp.path / kSafetensorsSingleName));
  EXPECT_EQ(SafetensorsShards::open_folder(tmp.path.string()).files().size(), 5u);
  expect_error<IoError>([&] { SafetensorsShards::open_folder((tmp.path / "nothing").string()); },
                        "has neither model.safetensors nor model.safetensors.index.json");
  expect_error<ValueError>([&] { save_safetensors_shards(tmp.path.string(), {ts[0], ts[0]}, 100); },
                           "duplicate or reserved name 'embed.weight'");
}

TEST(SafetensorsShards, IndexParseErrors) {
  auto bad = [](const std::string& text, const std::string& part) {
    expect_error<FormatError>([&] { SafetensorsIndex::parse(text, "idx.json"); }, part);
    expect_error<FormatError>([&] { SafetensorsIndex::parse(text, "idx.json"); }, "idx.json");
  };
  bad("{", "not valid JSON");
  bad("[]", "must be a JSON object");
  bad(R"({"metadata":{}})", "no weight_map");
  bad(R"({"weight_map":[]})", "weight_map must be an object");
  bad(R"({"weight_map":{}})", "weight_map is empty");
  bad(R"({"weight_map":{"a":1}})", "tensor 'a' must be a file name string");
  bad(R"({"weight_map":{"a":"x","a":"y"}})", "key 'a' twice");
  bad(R"({"metadata":[],"weight_map":{"a":"x"}})", "metadata must be an object");
  bad(R"({"metadata":{"total_size":-1},"weight_map":{"a":"x"}})", "total_size must be a non-negative integer");
  bad(R"({"metadata":{"total_size":"12"},"weight_map":{"a":"x"}})", "total_size");
  bad(R"({"metadata":{"total_size":1.5},"weight_map":{"a":"x"}})", "total_size");
  for (const char* f : {"../x.safetensors", "/etc/passwd", "a/../../x", "./x", "a//x", "", "a\\x", "sub/.."})
    bad(std::string(R"({"weight_map":{"w":")") + (std::string(f) == "a\\x" ? "a\\\\x" : f) + "\"}}",
        "weight_map entry for tensor 'w' names file");
  auto ok = SafetensorsIndex::parse(R"({"metadata":{"total_size":8.0,"format":"pt"},"weight_map":{"a":"s/x","b":"x"}})");
  EXPECT_EQ(ok.total_size, std::optional<uint64_t>(8));
  EXPECT_EQ(ok.files(), (std::vector<std::string>{"s/x", "x"}));
  EXPECT_FALSE(SafetensorsIndex::parse(R"({"metadata":{"total_size":null},"weight_map":{"a":"x"}})").total_size);
}

TEST(SafetensorsShards, IndexAgainstShards) {
  TempDir tmp("st_badidx");
  auto ts = some_tensors();
  save_safetensors_shards(tmp.path.string(), ts, 150);
  std::string ip = tmp / kSafetensorsIndexName;
  const std::string s1 = "model-00001-of-00004.safetensors", s2 = "model-00002-of-00004.safetensors";
  auto idx = SafetensorsIndex::parse(lmlab::test::slurp(ip));
  auto with = [&](auto edit) {
    SafetensorsIndex i = idx;
    edit(i);
    write_index(ip, i.to_json());
  };
  // a shard the index names is missing
  with([&](SafetensorsIndex& i) { i.weight_map["extra"] = "model-00009-of-00009.safetensors"; });
  expect_error<IoError>([&] { SafetensorsShards::open_index(ip); }, "shard 'model-00009-of-00009.safetensors'");
  // a mapped tensor is not in its shard
  with([&](SafetensorsIndex& i) { i.weight_map["ghost"] = s1; });
  expect_error<FormatError>([&] { SafetensorsShards::open_index(ip); },
                            "weight_map puts tensor 'ghost' in '" + s1 + "' but that shard has no such tensor");
  // mapped to the wrong shard
  with([&](SafetensorsIndex& i) { i.weight_map["embed.weight"] = s2; });
  expect_error<FormatError>([&] { SafetensorsShards::open_index(ip); }, "tensor 'embed.weight'");
  // a shard tensor the index does not list
  with([&](SafetensorsIndex& i) { i.weight_map.erase("layers.0.b"); });
  expect_error<FormatError>([&] { SafetensorsShards::open_index(ip); },
                            "shard '" + s2 + "' holds tensor 'layers.0.b', which weight_map does not list");
  // wrong total size
  with([&](SafetensorsIndex& i) { i.total_size = 505; });
  expect_error<FormatError>([&] { SafetensorsShards::open_index(ip); },
                            "metadata.total_size is 505 but the shards' tensors hold 504 bytes");
  with([&](SafetensorsIndex& i) { i.total_size.reset(); });
  EXPECT_EQ(SafetensorsShards::open_index(ip).total_bytes(), 504u);
  // a corrupt shard: the error names the shard file
  with([](SafetensorsIndex&) {});
  write_file_atomic(tmp / s2, "not a safetensors file");
  expect_error<FormatError>([&] { SafetensorsShards::open_folder(tmp.path.string()); }, s2);
  // a tensor in two shards
  save_safetensors(tmp / s2, {{"layers.0.w", ts[1].second}, {"layers.0.b", ts[2].second},
                              {"layers.1.w", ts[3].second}, {"embed.weight", ts[0].second}});
  expect_error<FormatError>([&] { SafetensorsShards::open_index(ip); },
                            "tensor 'embed.weight' is in two shards, '" + s1 + "' and '" + s2 + "'");
  // the index names a file outside the folder
  write_index(ip, R"({"weight_map":{"embed.weight":"../model-00001-of-00004.safetensors"}})");
  expect_error<FormatError>([&] { SafetensorsShards::open_index(ip); }, "stay inside the folder");
}

TEST(SafetensorsShards, AssembleFromMemory) {
  // the in-memory entry the index fuzzer drives: shards given by name
  std::map<std::string, SafetensorsFile> shards;
  shards.emplace("a.safetensors", SafetensorsFile::from_bytes(safetensors_bytes({{"x", Tensor::zeros({2})}}), "a"));
  shards.emplace("b.safetensors", SafetensorsFile::from_bytes(safetensors_bytes({{"y", Tensor::ones({3})}}), "b"));
  auto idx = SafetensorsIndex::parse(
      R"({"metadata":{"total_size":20},"weight_map":{"x":"a.safetensors","y":"b.safetensors"}})", "mem");
  auto s = SafetensorsShards::assemble("mem", idx, shards);
  EXPECT_EQ(s.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(s.get("y").to_vector<float>(), (std::vector<float>{1, 1, 1}));
  idx.weight_map["z"] = "c.safetensors";
  expect_error<FormatError>([&] { SafetensorsShards::assemble("mem", idx, shards); }, "shard 'c.safetensors' was not given");
}
