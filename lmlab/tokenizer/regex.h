// Pre-tokenization regex: a thin PCRE2 wrapper (8-bit, UTF + Unicode properties, JIT) used by
// the Split and ByteLevel pre-tokenizers. Compiled with PCRE2_MATCH_INVALID_UTF so invalid UTF-8
// never fails a match: invalid bytes simply cannot be part of a match and end up in the gaps.
// Patterns follow HF tokenizers' Split pre-tokenizer (Oniguruma syntax, which PCRE2 accepts for
// every pattern in use: GPT-2, Llama-3, Qwen2).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmlab {

// GPT-2's pre-tokenization pattern (openai/gpt-2 encoder.py; HF ByteLevel use_regex=true).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama-3's pattern (meta-llama tokenizer.json Split pre-tokenizer; Qwen2 uses the same idea
// with \p{N} single digits).
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Qwen2's pattern (Qwen/Qwen2 tokenizer.json Split pre-tokenizer; llama.cpp pre "qwen2"): Llama-3's
// with single digits.
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class PatternPreset { Gpt2, Llama3, Qwen2 };
std::string_view preset_pattern(PatternPreset p);

// A compiled pattern; cheap to copy (shares the compiled code, which PCRE2 allows to be used by
// many threads at once). Per-thread match data and JIT stacks are kept thread_local.
class Regex {
 public:
  Regex() = default;
  // Throws FormatError with PCRE2's message and the offset when the pattern does not compile.
  // literal=true matches `pattern` as plain text (HF's {"String": ...} split pattern).
  explicit Regex(std::string_view pattern, bool literal = false);

  const std::string& pattern() const { return pattern_; }
  bool literal() const { return literal_; }
  bool empty() const { return !code_; }

  // Appends the [begin, end) byte ranges of all non-overlapping, non-empty matches, left to right.
  // Returns false (never throws; safe in parallel regions) when PCRE2 reports an error such as a
  // resource limit; `error` then holds its message.
  bool find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out, std::string* error) const;

 private:
  std::string pattern_;
  bool literal_ = false;
  std::shared_ptr<void> code_;  // pcre2_code_8*, freed by pcre2_code_free
};

}  // namespace lmlab
