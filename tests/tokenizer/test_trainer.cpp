// BPE trainer: a hand-worked example (with the documented tie-break), determinism across thread
// counts, every merge improving compression, special tokens, option errors and speed.
#include <gtest/gtest.h>

#include <chrono>

#include "lmlab/core/error.h"
#include "lmlab/core/parallel.h"
#include "lmlab/data/brown.h"
#include "lmlab/tokenizer/tokenizer.h"

using namespace lmlab;

namespace {

std::vector<std::string> brown_subset(size_t n_docs, size_t stride = 5) {
  static const std::vector<BrownDocument> docs = load_brown(default_brown_dir());
  std::vector<std::string> out;
  for (size_t i = 0; i < docs.size() && out.size() < n_docs; i += stride) out.push_back(docs[i].text);
  return out;
}

// The tokenizer's vocab and merges as strings, to rebuild it with fewer merges.
struct Parts {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};
Parts parts_of(const Tokenizer& t) {
  Parts p;
  const BpeModel& m = t.model();
  for (int32_t id = 0; id < m.id_limit(); ++id)
    if (const std::string* s = m.id_to_token(id)) p.vocab.emplace_back(*s, id);
  for (auto [a, b] : m.merges()) p.merges.emplace_back(*m.id_to_token(a), *m.id_to_token(b));
  return p;
}

}  // namespace

TEST(Trainer, HandWorkedExample) {
  // "aaabdaaabac" (the classic BPE example) is one GPT-2 piece. Pair counts: aa 4, ab 2, bd/da/ba/ac 1.
  // Merge 1: a+a (4). Now "aa a b d aa a b a c": (aa,a) 2 and (a,b) 2 tie; ("a","b") < ("aa","a")
  // lexicographically, so merge 2 is a+b. Then "aa ab d aa ab a c": (aa,ab) 2 -> merge 3.
  TrainOptions o;
  o.vocab_size = 256 + 3;
  o.min_frequency = 1;
  TrainStats st;
  Tokenizer t = Tokenizer::train({"aaabdaaabac"}, o, &st);
  std::vector<std::pair<int32_t, int32_t>> want = {{97, 97}, {97, 98}, {256, 257}};
  EXPECT_EQ(t.model().merges(), want);
  EXPECT_EQ(st.merge_counts, (std::vector<int64_t>{4, 2, 2}));
  EXPECT_EQ(st.merge_savings, (std::vector<int64_t>{2, 2, 2}));  // "aaa" holds two (a,a) but one merge
  EXPECT_EQ(t.id_to_token(258), "aaab");
  EXPECT_EQ(t.encode("aaabdaaabac"), (std::vector<int32_t>{258, 'd', 258, 'a', 'c'}));
  EXPECT_EQ(t.id_to_token(32), "Ġ");  // bytes keep ids 0..255 when there are no special tokens
}

TEST(Trainer, MinFrequencyStops) {
  TrainOptions o;
  o.vocab_size = 1000;
  o.min_frequency = 2;
  TrainStats st;
  Tokenizer t = Tokenizer::train({"aaabdaaabac"}, o, &st);
  EXPECT_EQ(t.model().merges().size(), 3u);  // after aaab every pair occurs once
  EXPECT_EQ(t.vocab_size(), 259);
}

TEST(Trainer, DeterministicAcrossThreadCounts) {
  std::vector<std::string> texts = brown_subset(30);
  TrainOptions o;
  o.vocab_size = 800;
  o.special_tokens = {"<|endoftext|>"};
  o.num_threads = 1;
  std::string one = Tokenizer::train(texts, o).to_json();
  o.num_threads = 2;
  std::string two = Tokenizer::train(texts, o).to_json();
  EXPECT_EQ(one, two);
  o.preset = PatternPreset::Llama3;
  o.num_threads = 1;
  std::string l1 = Tokenizer::train(texts, o).to_json();
  o.num_threads = 2;
  EXPECT_EQ(l1, Tokenizer::train(texts, o).to_json());
}

TEST(Trainer, EveryMergeImprovesCompression) {
  std::vector<std::string> texts = brown_subset(20);
  TrainOptions o;
  o.vocab_size = 700;
  TrainStats st;
  Tokenizer t = Tokenizer::train(texts, o, &st);
  ASSERT_EQ(st.merge_counts.size(), t.model().merges().size());
  ASSERT_EQ(int(st.merge_counts.size()), 700 - 256);
  ASSERT_EQ(st.merge_savings.size(), st.merge_counts.size());
  // The chosen pair's count never grows (new pairs occur at most as often as the pair merged),
  // and every merge removes tokens (fewer than its count only when the pair overlaps itself).
  for (size_t i = 0; i < st.merge_counts.size(); ++i) {
    EXPECT_GE(st.merge_counts[i], o.min_frequency);
    EXPECT_GT(st.merge_savings[i], 0) << i;
    EXPECT_LE(st.merge_savings[i], st.merge_counts[i]) << i;
    if (i) {
      EXPECT_LE(st.merge_counts[i], st.merge_counts[i - 1]) << i;
    }
  }
  // Encoding the training text with the first k merges: strictly fewer tokens as k grows, and the
  // saving of merges (k0, k1] equals the sum of their savings as the trainer counted them.
  Parts p = parts_of(t);
  auto tokens_with = [&](size_t k) {
    std::vector<std::pair<std::string, std::string>> m(p.merges.begin(), p.merges.begin() + long(k));
    Tokenizer tk = Tokenizer::from_parts(p.vocab, m, {}, t.pre_tokenizer());
    size_t n = 0;
    for (const auto& s : texts) n += tk.encode(s).size();
    return n;
  };
  std::vector<size_t> ks = {0, 1, 2, 10, 50, 200, p.merges.size()};
  size_t bytes = 0;
  for (const auto& s : texts) bytes += s.size();
  std::vector<size_t> n;
  for (size_t k : ks) n.push_back(tokens_with(k));
  EXPECT_EQ(n[0], bytes);
  for (size_t i = 1; i < ks.size(); ++i) {
    EXPECT_LT(n[i], n[i - 1]) << "k=" << ks[i];
    int64_t saved = 0;
    for (size_t r = ks[i - 1]; r < ks[i]; ++r) saved += st.merge_savings[r];
    EXPECT_EQ(int64_t(n[i - 1] - n[i]), saved) << "k=" << ks[i];
  }
}

TEST(Trainer, SpecialTokensGetFirstIdsAndAreNeverMerged) {
  std::vector<std::string> texts;
  for (int i = 0; i < 50; ++i) texts.push_back("hello<|endoftext|>world<|endoftext|><|endoftext|>");
  TrainOptions o;
  o.vocab_size = 300;
  o.min_frequency = 1;
  o.special_tokens = {"<|endoftext|>", "<|pad|>"};
  Tokenizer t = Tokenizer::train(texts, o);
  EXPECT_EQ(t.token_to_id("<|endoftext|>"), 0);
  EXPECT_EQ(t.token_to_id("<|pad|>"), 1);
  EXPECT_EQ(t.token_to_id("Ā"), 2);  // byte 0 right after the special tokens
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    std::string tok = t.id_to_token(id);
    if (id > 1) {
      EXPECT_EQ(tok.find("endoftext|"), std::string::npos) << tok;
    }
  }
  EXPECT_EQ(t.encode("hello<|endoftext|>world"), (std::vector<int32_t>{*t.token_to_id("hello"), 0, *t.token_to_id("world")}));
}

TEST(Trainer, BadOptions) {
  TrainOptions o;
  o.vocab_size = 100;
  EXPECT_THROW(Tokenizer::train({"abc"}, o), ConfigError);
  o.vocab_size = 300;
  o.special_tokens = {"<a>", "<a>"};
  EXPECT_THROW(Tokenizer::train({"abc"}, o), ConfigError);
  o.special_tokens = {"a"};
  EXPECT_THROW(Tokenizer::train({"abc"}, o), ConfigError);
  o.special_tokens = {};
  o.pattern = "(";
  EXPECT_THROW(Tokenizer::train({"abc"}, o), FormatError);
  // Empty input trains the byte alphabet alone.
  o.pattern.clear();
  EXPECT_EQ(Tokenizer::train({}, o).vocab_size(), 256);
}

TEST(Trainer, OneKVocabOnBrownSubsetIsFast) {
  std::vector<std::string> texts = brown_subset(100);
  TrainOptions o;
  o.vocab_size = 1024;
  auto t0 = std::chrono::steady_clock::now();
  Tokenizer t = Tokenizer::train(texts, o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(t.vocab_size(), 1024);
  EXPECT_LT(secs, 3.0);
}
