// Pre-tokenization: cuts text into pieces that BPE encodes independently (Radford et al. 2019,
// GPT-2 section 2.2). Mirrors HF tokenizers' pre_tokenizer section: a Sequence of Split(regex,
// behavior, invert), Digits and ByteLevel(add_prefix_space, use_regex) steps, each applied to
// every piece the previous step produced. The byte mapping itself happens in the BPE model.
#pragma once
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "lmlab/tokenizer/regex.h"

namespace lmlab {

// HF SplitDelimiterBehavior: what happens to the matches ("delimiters") of a Split step.
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };
const char* split_behavior_name(SplitBehavior b);
// Throws FormatError naming `field` when `name` is not one of the five HF behaviors.
SplitBehavior parse_split_behavior(const std::string& name, const std::string& field);

struct PreTokenizerStep {
  enum class Kind { Split, Digits, ByteLevel };
  Kind kind = Kind::ByteLevel;
  // Split: the pattern (regex.literal() for HF's {"String": ...}), behavior and invert.
  Regex regex;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  // Digits: each digit its own piece, or runs of digits.
  bool individual_digits = false;
  // ByteLevel: prepend ' ' to a piece that does not start with one; split with the GPT-2 pattern.
  bool add_prefix_space = false;
  bool trim_offsets = true;  // offsets only; kept for round trips
  bool use_regex = true;

  static PreTokenizerStep split(std::string_view pattern, SplitBehavior behavior = SplitBehavior::Isolated,
                                bool invert = false, bool literal = false);
  static PreTokenizerStep digits(bool individual);
  static PreTokenizerStep byte_level(bool add_prefix_space, bool use_regex, bool trim_offsets = true);
};

class PreTokenizer {
 public:
  PreTokenizer() = default;
  explicit PreTokenizer(std::vector<PreTokenizerStep> steps);
  // The two presets written by the trainer: GPT-2 = [ByteLevel(use_regex)], any other pattern =
  // [Split(pattern, Isolated), ByteLevel(use_regex=false)] (the Llama-3 tokenizer.json layout).
  static PreTokenizer from_pattern(std::string_view pattern);

  const std::vector<PreTokenizerStep>& steps() const { return steps_; }

  // Appends the pieces of `text` to `pieces`. Pieces are views into `text` or, when a step had
  // to add bytes (add_prefix_space), into strings appended to `arena` (a deque, so earlier views
  // stay valid). Concatenated, the pieces equal `text` except for bytes a Removed behavior drops
  // and spaces add_prefix_space adds. Returns false with `error` set on a regex failure; never
  // throws (safe inside parallel regions).
  bool split(std::string_view text, std::vector<std::string_view>& pieces, std::deque<std::string>& arena,
             std::string* error) const;

 private:
  bool apply(const PreTokenizerStep& step, std::string_view piece, std::vector<std::string_view>& out,
             std::deque<std::string>& arena, std::string* error) const;
  std::vector<PreTokenizerStep> steps_;
  std::vector<size_t> active_;  // steps that change anything (a bare ByteLevel step does not)
};

}  // namespace lmlab
