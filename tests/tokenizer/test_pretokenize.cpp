// Byte-level alphabet and pre-tokenization: GPT-2 / Llama-3 pattern pieces worked out by hand,
// invalid UTF-8 kept in gap pieces, and the HF Split behaviors.
#include <gtest/gtest.h>

#include <deque>
#include <set>

#include "lmlab/core/error.h"
#include "lmlab/tokenizer/byte_level.h"
#include "lmlab/tokenizer/pretokenize.h"

using namespace lmlab;

namespace {
std::vector<std::string> pieces(const PreTokenizer& p, std::string_view text) {
  std::vector<std::string_view> out;
  std::deque<std::string> arena;
  std::string err;
  EXPECT_TRUE(p.split(text, out, arena, &err)) << err;
  return {out.begin(), out.end()};
}
std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}
using V = std::vector<std::string>;
}  // namespace

TEST(ByteLevel, TableMatchesGpt2) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    char32_t c = byte_level::byte_to_char(uint8_t(b));
    EXPECT_TRUE(seen.insert(c).second) << "byte " << b;
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    if (printable) {
      EXPECT_EQ(c, char32_t(b));
    } else {
      EXPECT_GE(c, 256u);
    }
  }
  EXPECT_EQ(byte_level::byte_to_utf8(' '), "Ġ");
  EXPECT_EQ(byte_level::byte_to_utf8('\n'), "Ċ");
  EXPECT_EQ(byte_level::byte_to_utf8(0), "Ā");
  EXPECT_EQ(byte_level::byte_to_utf8(0xAD), "Ń");
  std::string all;
  for (int b = 0; b < 256; ++b) all += char(b);
  EXPECT_EQ(byte_level::decode(byte_level::encode(all)), all);
  EXPECT_EQ(byte_level::encode(" hi\n"), "ĠhiĊ");
  // Code points outside the alphabet pass through, as HF's ByteLevel decoder does.
  EXPECT_EQ(byte_level::decode("<|x y|>"), "<|x y|>");
  uint8_t b = 0;
  EXPECT_TRUE(byte_level::single_byte("Ġ", &b));
  EXPECT_EQ(b, ' ');
  EXPECT_FALSE(byte_level::single_byte("ab", &b));
}

TEST(PreTokenize, Gpt2Pattern) {
  PreTokenizer p = PreTokenizer::from_pattern(kGpt2Pattern);
  EXPECT_EQ(pieces(p, "Hello world's 123  \n"), (V{"Hello", " world", "'s", " 123", "  \n"}));
  EXPECT_EQ(pieces(p, "a  b"), (V{"a", " ", " b"}));
  EXPECT_EQ(pieces(p, "DON'T stop!!"), (V{"DON", "'", "T", " stop", "!!"}));
  EXPECT_EQ(pieces(p, "naïve café 東京"), (V{"naïve", " café", " 東京"}));
  EXPECT_EQ(pieces(p, "x\t\ty"), (V{"x", "\t", "\t", "y"}));
}

TEST(PreTokenize, Llama3Pattern) {
  PreTokenizer p = PreTokenizer::from_pattern(kLlama3Pattern);
  EXPECT_EQ(pieces(p, "Hello WORLD's 12345!!\n\nok"), (V{"Hello", " WORLD", "'s", " ", "123", "45", "!!\n\n", "ok"}));
  EXPECT_EQ(pieces(p, "DON'T"), (V{"DON", "'T"}));
  EXPECT_EQ(pieces(p, "(hi)\r\n  x"), (V{"(hi", ")\r\n", " ", " x"}));
}

TEST(PreTokenize, InvalidUtf8IsKeptInGaps) {
  for (auto pat : {kGpt2Pattern, kLlama3Pattern}) {
    PreTokenizer p = PreTokenizer::from_pattern(pat);
    for (std::string s : {std::string("ab\xFF" "cd"), std::string("\x80\x80 x"), std::string("caf\xC3"),
                          std::string("\xE2\x82 \xC0\xAF!"), std::string("\xED\xA0\x80z"), std::string("\xF0\x9F\x98")}) {
      V v = pieces(p, s);
      EXPECT_EQ(join(v), s);
      for (const auto& x : v) EXPECT_FALSE(x.empty());
    }
    EXPECT_EQ(pieces(p, "ab\xFF" "cd"), (V{"ab", "\xFF", "cd"}));
  }
}

TEST(PreTokenize, SplitBehaviors) {
  auto split = [](SplitBehavior b, bool invert = false) {
    return PreTokenizer({PreTokenizerStep::split("-", b, invert, true)});
  };
  // HF tokenizers' documented example: "the-final--countdown" split on "-".
  std::string s = "the-final--countdown";
  EXPECT_EQ(pieces(split(SplitBehavior::Isolated), s), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pieces(split(SplitBehavior::Removed), s), (V{"the", "final", "countdown"}));
  EXPECT_EQ(pieces(split(SplitBehavior::MergedWithPrevious), s), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pieces(split(SplitBehavior::MergedWithNext), s), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pieces(split(SplitBehavior::Contiguous), s), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(pieces(split(SplitBehavior::Isolated, true), s), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pieces(split(SplitBehavior::Removed, true), s), (V{"-", "-", "-"}));
  EXPECT_THROW(parse_split_behavior("Merged", "x"), FormatError);
}

TEST(PreTokenize, DigitsAndPrefixSpace) {
  PreTokenizer d({PreTokenizerStep::digits(true), PreTokenizerStep::byte_level(false, false)});
  EXPECT_EQ(pieces(d, "ab123c"), (V{"ab", "1", "2", "3", "c"}));
  PreTokenizer c({PreTokenizerStep::digits(false)});
  EXPECT_EQ(pieces(c, "ab123c"), (V{"ab", "123", "c"}));
  PreTokenizer ps({PreTokenizerStep::byte_level(true, true)});
  EXPECT_EQ(pieces(ps, "Hello world"), (V{" Hello", " world"}));
  EXPECT_EQ(pieces(ps, " x"), (V{" x"}));
}

TEST(PreTokenize, BadRegexIsFormatError) {
  try {
    PreTokenizerStep::split("(unclosed");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos) << e.what();
  }
}

TEST(PreTokenize, LongWhitespaceRunDoesNotFail) {
  // \s+(?!\S) backtracks over the whole run; the JIT stack must hold it.
  std::string s = "a" + std::string(200000, ' ') + "b" + std::string(100000, '\n');
  for (auto pat : {kGpt2Pattern, kLlama3Pattern}) EXPECT_EQ(join(pieces(PreTokenizer::from_pattern(pat), s)), s);
}
