// Data layer: Brown detagging and splits, token shards (round trip, corruption), window loader
// reproducibility and exact resume, synthetic task registry.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lmlab/data/brown.h"
#include "lmlab/data/loader.h"
#include "lmlab/data/synthetic.h"
#include "lmlab/data/token_shard.h"
#include "lmlab/lmlab.h"

using namespace lmlab;

namespace {
std::string tmp_path(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / "lmlab_data_test";
  std::filesystem::create_directories(d);
  return (d / name).string();
}
}  // namespace

TEST(Brown, DetagKeepsSentencesAndParagraphs) {
  std::string tagged =
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\nIt/pps ended/vbd ,/, he/pps said/vbd ./.\n\n\n"
      "\tA/at new/jj (/( short/jj )/) paragraph/nn 1/2/cd ./.\n";
  EXPECT_EQ(brown_detag(tagged), "The jury said \"no\".\nIt ended, he said.\n\nA new (short) paragraph 1/2.");
}

TEST(Brown, LoadsCorpusAndSplitsDeterministically) {
  std::string dir = default_brown_dir();
  if (!std::filesystem::exists(dir + "/cats.txt")) GTEST_SKIP() << "corpus not installed at " << dir;
  auto docs = load_brown(dir);
  ASSERT_EQ(docs.size(), 500u);
  EXPECT_EQ(docs[0].id, "ca01");
  EXPECT_EQ(docs[0].category, "news");
  EXPECT_EQ(docs[0].text.rfind("The Fulton County Grand Jury said Friday", 0), 0u);
  EXPECT_EQ(docs[0].text.find('/'), std::string::npos);
  int counts[3] = {0, 0, 0};
  for (auto& d : docs) counts[int(brown_split_of(d.id))]++;
  EXPECT_GT(counts[1], 10);
  EXPECT_GT(counts[2], 10);
  EXPECT_EQ(brown_split_of("ca01"), brown_split_of("ca01"));
  EXPECT_THROW(load_brown("/nonexistent"), IoError);
}

TEST(TokenShard, RoundTripAndCorruption) {
  std::vector<uint32_t> ids = {0, 1, 2, 65535, 7};
  std::string p = tmp_path("a.tok");
  write_token_shard(p, ids, 65536);
  auto s = TokenShard::open(p);
  EXPECT_EQ(s.size(), 5u);
  EXPECT_EQ(s.at(3), 65535u);
  std::string p4 = tmp_path("b.tok");
  write_token_shard(p4, {70000, 3}, 100000);
  EXPECT_EQ(TokenShard::open(p4).at(0), 70000u);
  EXPECT_THROW(write_token_shard(p4, {5}, 5), ValueError);
  // truncate: header promises more than the file holds
  std::filesystem::resize_file(p, std::filesystem::file_size(p) - 2);
  EXPECT_THROW(TokenShard::open(p), FormatError);
  {
    std::ofstream f(p, std::ios::binary);
    f << "not a shard at all, definitely longer than 32 bytes......";
  }
  EXPECT_THROW(TokenShard::open(p), FormatError);
  EXPECT_THROW(TokenShard::open(tmp_path("missing.tok")), IoError);
  int64_t out[2];
  EXPECT_THROW(TokenShard::open(p4).read(1, 2, out), IndexError);
}

TEST(WindowLoader, ReproducibleAndResumable) {
  std::vector<uint32_t> ids(5000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint32_t((i * 7919) % 1000);
  std::string p = tmp_path("c.tok");
  write_token_shard(p, ids, 1000);
  WindowLoader a(TokenShard::open(p), 4, 31, 42), b(TokenShard::open(p), 4, 31, 42);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.next().inputs.to_vector<int64_t>(), b.next().inputs.to_vector<int64_t>());
  // targets are inputs shifted by one
  Batch x = a.next();
  auto in = x.inputs.to_vector<int64_t>(), tg = x.targets.to_vector<int64_t>();
  for (int t = 0; t + 1 < 31; ++t) EXPECT_EQ(tg[size_t(t)], in[size_t(t + 1)]);
  // resume across an epoch boundary gives exactly the same batches
  LoaderState st = a.state();
  std::vector<std::vector<int64_t>> ref;
  for (int i = 0; i < 60; ++i) ref.push_back(a.next().inputs.to_vector<int64_t>());
  WindowLoader c(TokenShard::open(p), 4, 31, 42);
  c.set_state(st);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(c.next().inputs.to_vector<int64_t>(), ref[size_t(i)]) << i;
  WindowLoader d(TokenShard::open(p), 4, 31, 43);
  EXPECT_NE(d.next().inputs.to_vector<int64_t>(), WindowLoader(TokenShard::open(p), 4, 31, 42).next().inputs.to_vector<int64_t>());
  // an epoch covers the non-overlapping windows after its random shift: 155 or 156 of 32 tokens
  EXPECT_GE(a.windows_per_epoch(), 155);
  EXPECT_LE(a.windows_per_epoch(), 156);
}

TEST(SequentialLoader, CoversEveryTokenOnce) {
  std::vector<uint32_t> ids(1000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint32_t(i);
  std::string p = tmp_path("d.tok");
  write_token_shard(p, ids, 1000);
  SequentialLoader l(TokenShard::open(p), 3, 10);
  Batch b;
  int64_t seen = 0, expect = 1;
  while (l.next(b)) {
    for (int64_t t : b.targets.to_vector<int64_t>()) {
      EXPECT_EQ(t, expect++);
      ++seen;
    }
  }
  EXPECT_EQ(seen, 990);
}

TEST(Synthetic, RegistryFindsAddition) {
  auto names = synthetic_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "addition"), names.end());
  auto t = make_synthetic("addition");
  Generator g(3);
  auto ex = t->sample(g);
  auto plus = ex.prompt.find('+');
  int64_t a = std::stoll(ex.prompt.substr(0, plus)), b = std::stoll(ex.prompt.substr(plus + 1));
  EXPECT_EQ(std::to_string(a + b), ex.answer);
  EXPECT_THROW(make_synthetic("nope"), ConfigError);
}
