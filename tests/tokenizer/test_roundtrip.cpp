// Property tests: decode(encode(s)) == s over thousands of random strings (ASCII, Latin-1, CJK,
// emoji, combining marks, whitespace runs, digits, special-token text, and raw bytes that are
// not valid UTF-8 next to valid text), for tokenizers trained on a Brown subset with the GPT-2
// and the Llama-3 patterns; plus to_json/from_json round trips and batch/thread consistency.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "lmlab/core/parallel.h"
#include "lmlab/data/brown.h"
#include "lmlab/tokenizer/tokenizer.h"

using namespace lmlab;

namespace {

std::vector<std::string> brown_subset(size_t n_docs) {
  static const std::vector<BrownDocument> docs = load_brown(default_brown_dir());
  std::vector<std::string> out;
  for (size_t i = 0; i < docs.size() && out.size() < n_docs; i += 7) out.push_back(docs[i].text);
  return out;
}

const Tokenizer& trained(PatternPreset preset) {
  auto make = [](PatternPreset p) {
    TrainOptions o;
    o.vocab_size = 1200;
    o.preset = p;
    o.special_tokens = {"<|endoftext|>", "<|pad|>"};
    return Tokenizer::train(brown_subset(40), o);
  };
  static const Tokenizer gpt2 = make(PatternPreset::Gpt2);
  static const Tokenizer llama3 = make(PatternPreset::Llama3);
  return preset == PatternPreset::Gpt2 ? gpt2 : llama3;
}

void append_utf8(std::string& s, char32_t c) {
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += char(0xE0 | (c >> 12));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xF0 | (c >> 18));
    s += char(0x80 | ((c >> 12) & 0x3F));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  }
}

// A random string built from runs of different kinds of text.
std::string random_text(std::mt19937& rng, bool with_invalid) {
  auto pick = [&](uint32_t lo, uint32_t hi) { return lo + rng() % (hi - lo + 1); };
  static const char* kInvalid[] = {"\x80", "\xBF\xBF", "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xC0\xAF", "\xE0\x80\xAF",
                                   "\xFF", "\xFE", "\xED\xA0\x80", "\xF8\x88\x80\x80\x80", "\xF4\x90\x80\x80"};
  static const char32_t kSpaces[] = {' ', '\t', '\n', '\r', 0xA0, 0x3000, 0x2009, '\v', '\f'};
  std::string s;
  int runs = int(pick(1, 8));
  for (int r = 0; r < runs; ++r) {
    int len = int(pick(1, 6));
    switch (pick(0, with_invalid ? 10 : 9)) {
      case 0:
        for (int i = 0; i < len; ++i) s += char(pick(0x20, 0x7E));
        break;
      case 1:
        for (int i = 0; i < len; ++i) append_utf8(s, pick(0xA0, 0xFF));
        break;
      case 2:
        for (int i = 0; i < len; ++i) append_utf8(s, pick(0x4E00, 0x9FFF));
        break;
      case 3:
        for (int i = 0; i < len; ++i) append_utf8(s, pick(0x1F300, 0x1FAFF));
        break;
      case 4:  // letters followed by combining marks
        for (int i = 0; i < len; ++i) {
          s += char(pick('a', 'z'));
          append_utf8(s, pick(0x300, 0x36F));
        }
        break;
      case 5:
        for (int i = 0; i < len; ++i) append_utf8(s, kSpaces[rng() % std::size(kSpaces)]);
        break;
      case 6:
        for (int i = 0; i < len * 2; ++i) s += char(pick('0', '9'));
        break;
      case 7: {
        static const char* kWords[] = {"the", " The", "jury", " said", "'s", "'LL", "don't", " of", ",", "."};
        for (int i = 0; i < len; ++i) s += kWords[rng() % std::size(kWords)];
        break;
      }
      case 8:
        s += rng() % 2 ? "<|endoftext|>" : "<|pad|>";
        break;
      case 9:
        for (int i = 0; i < len; ++i) {  // any valid scalar value (surrogates shifted out)
          char32_t c = pick(0x80, 0x10FFFF);
          append_utf8(s, c >= 0xD800 && c <= 0xDFFF ? c - 0x800 : c);
        }
        break;
      default:
        for (int i = 0; i < len; ++i) {
          if (rng() % 2) s += kInvalid[rng() % std::size(kInvalid)];
          else s += char(pick(0, 255));
        }
        break;
    }
  }
  return s;
}

void check_round_trip(const Tokenizer& t, std::mt19937& rng, int n, bool with_invalid) {
  int32_t V = t.vocab_size();
  for (int i = 0; i < n; ++i) {
    std::string s = random_text(rng, with_invalid);
    for (bool allow : {true, false}) {
      std::vector<int32_t> ids = t.encode(s, allow);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < V);
      ASSERT_EQ(t.decode(ids), s) << "allow_special=" << allow << " case " << i;
    }
  }
}

}  // namespace

TEST(RoundTrip, Gpt2RandomUnicode) {
  std::mt19937 rng(1);
  check_round_trip(trained(PatternPreset::Gpt2), rng, 2000, false);
}

TEST(RoundTrip, Llama3RandomUnicode) {
  std::mt19937 rng(2);
  check_round_trip(trained(PatternPreset::Llama3), rng, 2000, false);
}

TEST(RoundTrip, Gpt2InvalidUtf8Adjacent) {
  std::mt19937 rng(3);
  check_round_trip(trained(PatternPreset::Gpt2), rng, 2000, true);
}

TEST(RoundTrip, Llama3InvalidUtf8Adjacent) {
  std::mt19937 rng(4);
  check_round_trip(trained(PatternPreset::Llama3), rng, 2000, true);
}

TEST(RoundTrip, RawRandomBytes) {
  std::mt19937 rng(5);
  for (PatternPreset p : {PatternPreset::Gpt2, PatternPreset::Llama3}) {
    const Tokenizer& t = trained(p);
    for (int i = 0; i < 500; ++i) {
      std::string s(rng() % 64, '\0');
      for (char& c : s) c = char(rng() % 256);
      ASSERT_EQ(t.decode(t.encode(s)), s);
    }
  }
}

TEST(RoundTrip, SpecialTokensSplitOnlyWhenAllowed) {
  const Tokenizer& t = trained(PatternPreset::Gpt2);
  ASSERT_EQ(t.token_to_id("<|endoftext|>"), 0);
  ASSERT_EQ(t.token_to_id("<|pad|>"), 1);
  std::vector<int32_t> a = t.encode("The jury<|endoftext|><|pad|>said");
  EXPECT_EQ(std::count(a.begin(), a.end(), 0), 1);
  EXPECT_EQ(std::count(a.begin(), a.end(), 1), 1);
  std::vector<int32_t> b = t.encode("The jury<|endoftext|><|pad|>said", false);
  EXPECT_EQ(std::count(b.begin(), b.end(), 0) + std::count(b.begin(), b.end(), 1), 0);
  EXPECT_EQ(t.decode(a, true), "The jurysaid");
  EXPECT_EQ(t.eos_id(), 0);
  EXPECT_EQ(t.pad_id(), 1);
}

TEST(RoundTrip, JsonRoundTripGivesIdenticalEncodings) {
  std::mt19937 rng(6);
  for (PatternPreset p : {PatternPreset::Gpt2, PatternPreset::Llama3}) {
    const Tokenizer& t = trained(p);
    std::string j = t.to_json();
    Tokenizer u = Tokenizer::from_json(j);
    EXPECT_EQ(u.to_json(), j);
    EXPECT_EQ(u.vocab_size(), t.vocab_size());
    for (int i = 0; i < 500; ++i) {
      std::string s = random_text(rng, true);
      ASSERT_EQ(u.encode(s), t.encode(s));
    }
    for (const std::string& doc : brown_subset(5)) ASSERT_EQ(u.encode(doc), t.encode(doc));
  }
  // The GPT-2 preset is written as HF's ByteLevel(use_regex) pre-tokenizer, others as Split.
  EXPECT_NE(trained(PatternPreset::Gpt2).to_json().find("\"use_regex\": true"), std::string::npos);
  EXPECT_NE(trained(PatternPreset::Llama3).to_json().find("\"type\": \"Split\""), std::string::npos);
}

TEST(RoundTrip, BatchMatchesSingleAndThreads) {
  const Tokenizer& t = trained(PatternPreset::Llama3);
  std::vector<std::string> texts = brown_subset(20);
  std::mt19937 rng(8);
  for (int i = 0; i < 200; ++i) texts.push_back(random_text(rng, true));
  int saved = num_threads();
  set_num_threads(2);
  Tokenizer fresh = Tokenizer::from_json(t.to_json());  // cold cache, filled concurrently
  auto batch = fresh.encode_batch(texts);
  set_num_threads(saved);
  ASSERT_EQ(batch.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) ASSERT_EQ(batch[i], t.encode(texts[i])) << i;
}

TEST(RoundTrip, BrownCompresses) {
  // A trained tokenizer must actually use its merges: well under one token per byte.
  const Tokenizer& t = trained(PatternPreset::Gpt2);
  size_t bytes = 0, tokens = 0;
  for (const std::string& d : brown_subset(10)) {
    bytes += d.size();
    tokens += t.encode(d).size();
  }
  EXPECT_LT(double(tokens) / double(bytes), 0.4);
}
