// PCRE2 wrapper for pre-tokenization (see regex.h). PCRE2 API: pcre2api(3), pcre2jit(3),
// pcre2unicode(3) "Matching in invalid UTF strings".
#include "lmlab/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lmlab/core/error.h"

namespace lmlab {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof(buf));
  return n < 0 ? "error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf), size_t(n));
}

// One per thread: PCRE2 match data and JIT stack must not be shared between concurrent matches.
// A single ovector pair is enough (we only need the whole match); PCRE2 then returns 0 instead of
// the capture count for patterns with groups, still filling the whole-match offsets.
struct MatchScratch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchScratch() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    // The default 32 KiB JIT stack is too small for long whitespace runs under \s+(?!\S).
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (context && jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchScratch() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch s;
  return s;
}

}  // namespace

std::string_view preset_pattern(PatternPreset p) {
  switch (p) {
    case PatternPreset::Gpt2: return kGpt2Pattern;
    case PatternPreset::Llama3: return kLlama3Pattern;
    case PatternPreset::Qwen2: return kQwen2Pattern;
  }
  return kGpt2Pattern;
}

Regex::Regex(std::string_view pattern, bool literal) : pattern_(pattern), literal_(literal) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  // PCRE2_LITERAL refuses PCRE2_UCP (it has no character classes for UCP to affect).
  opts |= literal ? PCRE2_LITERAL : PCRE2_UCP;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err,
                                   &err_off, nullptr);
  LMLAB_CHECK(code != nullptr, FormatError, "[tokenizer] regex does not compile: ", pcre2_message(err),
              " at offset ", err_off, " in pattern '", pattern, "'");
  // JIT is an optimisation only: when it is unavailable pcre2_match interprets the pattern.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
}

bool Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out, std::string* error) const {
  if (!code_) return true;
  auto* code = static_cast<const pcre2_code*>(code_.get());
  MatchScratch& s = scratch();
  if (!s.data || !s.context) {
    if (error) *error = "[tokenizer] out of memory for PCRE2 match data";
    return false;
  }
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t n = text.size(), start = 0;
  while (start < n) {
    int rc = pcre2_match(code, subject, n, start, 0, s.data, s.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      if (error) *error = "[tokenizer] regex match failed: " + pcre2_message(rc) + " (pattern '" + pattern_ + "')";
      return false;
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
    size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
      continue;
    }
    // An empty match (possible with patterns from a file): step past one code point, so the loop
    // advances; the skipped text lands in a gap piece, so no byte is lost.
    start = b + 1;
    while (start < n && (uint8_t(text[start]) & 0xC0) == 0x80) ++start;
  }
  return true;
}

}  // namespace lmlab
