// Added and special tokens (HF tokenizer.json "added_tokens"): strings matched in the raw text
// before pre-tokenization and emitted as one id each, e.g. "<|endoftext|>" or
// "<|begin_of_text|>". Non-special added tokens are always matched; special ones only when the
// caller allows it (HF's split_special_tokens=false).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmlab {

struct AddedToken {
  int32_t id = -1;
  std::string content;       // raw text (not byte-mapped)
  bool single_word = false;  // only match when not inside a word (ASCII letters, digits, '_')
  bool lstrip = false;       // the match swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool normalized = false;   // HF: match on normalized text; kept for round trips
  bool special = true;       // skipped by decode(skip_special) and matched only with allow_special
};

// Finds added tokens in text, longest match first at each position, leftmost first.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);

  // A run of plain text (id == -1) or one added token, as byte ranges of the input.
  struct Segment {
    size_t begin, end;
    int32_t id;
  };
  // Appends the segments of text; concatenated, their ranges cover it exactly.
  void split(std::string_view text, bool allow_special, std::vector<Segment>& out) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  // Indices into tokens_ by first byte, longest content first, so the first hit is the longest.
  std::array<std::vector<uint32_t>, 256> by_first_;
};

}  // namespace lmlab
