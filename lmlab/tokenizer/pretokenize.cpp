// Pre-tokenization pipeline (see pretokenize.h). The behavior folding follows the semantics of
// HF tokenizers' NormalizedString::split (Isolated / Removed / MergedWithPrevious /
// MergedWithNext / Contiguous over the alternating list of matches and gaps).
#include "lmlab/tokenizer/pretokenize.h"

#include "lmlab/core/error.h"

namespace lmlab {

namespace {

struct Span {
  size_t begin, end;
  bool is_match;
};

// Matches and the gaps between them, in order; empty gaps are left out (adjacent matches then
// stay adjacent, which is what Contiguous needs to see).
std::vector<Span> spans_of(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches,
                           bool invert) {
  std::vector<Span> spans;
  size_t pos = 0;
  for (auto [b, e] : matches) {
    if (b > pos) spans.push_back({pos, b, invert});
    spans.push_back({b, e, !invert});
    pos = e;
  }
  if (pos < text.size()) spans.push_back({pos, text.size(), invert});
  return spans;
}

std::vector<Span> fold(std::vector<Span> spans, SplitBehavior behavior) {
  std::vector<Span> out;
  switch (behavior) {
    case SplitBehavior::Isolated:
      return spans;
    case SplitBehavior::Removed:
      for (const Span& s : spans)
        if (!s.is_match) out.push_back(s);
      return out;
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !prev_match && !out.empty()) out.back().end = s.end;
        else out.push_back(s);
        prev_match = s.is_match;
      }
      return out;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !prev_match && !out.empty()) out.back().begin = it->begin;
        else out.push_back(*it);
        prev_match = it->is_match;
      }
      return {out.rbegin(), out.rend()};
    }
    case SplitBehavior::Contiguous: {
      bool prev_match = false;
      for (const Span& s : spans) {
        if (s.is_match && prev_match && !out.empty()) out.back().end = s.end;
        else out.push_back(s);
        prev_match = s.is_match;
      }
      return out;
    }
  }
  return spans;
}

const Regex& gpt2_regex() {
  static const Regex r(kGpt2Pattern);
  return r;
}

}  // namespace

const char* split_behavior_name(SplitBehavior b) {
  switch (b) {
    case SplitBehavior::Isolated: return "Isolated";
    case SplitBehavior::Removed: return "Removed";
    case SplitBehavior::MergedWithPrevious: return "MergedWithPrevious";
    case SplitBehavior::MergedWithNext: return "MergedWithNext";
    case SplitBehavior::Contiguous: return "Contiguous";
  }
  return "Isolated";
}

SplitBehavior parse_split_behavior(const std::string& name, const std::string& field) {
  for (SplitBehavior b : {SplitBehavior::Isolated, SplitBehavior::Removed, SplitBehavior::MergedWithPrevious,
                          SplitBehavior::MergedWithNext, SplitBehavior::Contiguous})
    if (name == split_behavior_name(b)) return b;
  throw FormatError(str_cat(field, ": expected one of Isolated, Removed, MergedWithPrevious, MergedWithNext, "
                                   "Contiguous, got '", name, "'"));
}

PreTokenizerStep PreTokenizerStep::split(std::string_view pattern, SplitBehavior behavior, bool invert,
                                         bool literal) {
  PreTokenizerStep s;
  s.kind = Kind::Split;
  s.regex = Regex(pattern, literal);
  s.behavior = behavior;
  s.invert = invert;
  return s;
}

PreTokenizerStep PreTokenizerStep::digits(bool individual) {
  PreTokenizerStep s;
  s.kind = Kind::Digits;
  s.individual_digits = individual;
  s.regex = Regex(individual ? R"(\p{N})" : R"(\p{N}+)");
  return s;
}

PreTokenizerStep PreTokenizerStep::byte_level(bool add_prefix_space, bool use_regex, bool trim_offsets) {
  PreTokenizerStep s;
  s.kind = Kind::ByteLevel;
  s.add_prefix_space = add_prefix_space;
  s.use_regex = use_regex;
  s.trim_offsets = trim_offsets;
  return s;
}

PreTokenizer::PreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {
  for (size_t k = 0; k < steps_.size(); ++k) {
    const PreTokenizerStep& s = steps_[k];
    bool identity = s.kind == PreTokenizerStep::Kind::ByteLevel && !s.add_prefix_space && !s.use_regex;
    if (!identity) active_.push_back(k);
  }
}

PreTokenizer PreTokenizer::from_pattern(std::string_view pattern) {
  if (pattern == kGpt2Pattern) return PreTokenizer({PreTokenizerStep::byte_level(false, true)});
  return PreTokenizer({PreTokenizerStep::split(pattern), PreTokenizerStep::byte_level(false, false)});
}

bool PreTokenizer::apply(const PreTokenizerStep& step, std::string_view piece, std::vector<std::string_view>& out,
                         std::deque<std::string>& arena, std::string* error) const {
  const Regex* re = &step.regex;
  SplitBehavior behavior = step.behavior;
  bool invert = step.invert;
  if (step.kind == PreTokenizerStep::Kind::ByteLevel) {
    if (step.add_prefix_space && (piece.empty() || piece.front() != ' ')) {
      arena.push_back(" " + std::string(piece));
      piece = arena.back();
    }
    if (!step.use_regex) {
      if (!piece.empty()) out.push_back(piece);
      return true;
    }
    re = &gpt2_regex();
    behavior = SplitBehavior::Isolated;
    invert = false;
  } else if (step.kind == PreTokenizerStep::Kind::Digits) {
    behavior = step.individual_digits ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
    invert = false;
  }
  thread_local std::vector<std::pair<size_t, size_t>> matches;
  matches.clear();
  if (!re->find_all(piece, matches, error)) return false;
  for (const Span& s : fold(spans_of(piece, matches, invert), behavior))
    if (s.end > s.begin) out.push_back(piece.substr(s.begin, s.end - s.begin));
  return true;
}

bool PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces, std::deque<std::string>& arena,
                         std::string* error) const {
  if (text.empty()) return true;
  if (active_.empty()) {
    pieces.push_back(text);
    return true;
  }
  if (active_.size() == 1) return apply(steps_[active_[0]], text, pieces, arena, error);
  std::vector<std::string_view> cur{text}, next;
  for (size_t k = 0; k < active_.size(); ++k) {
    bool last = k + 1 == active_.size();
    std::vector<std::string_view>& dst = last ? pieces : next;
    if (!last) next.clear();
    for (std::string_view p : cur)
      if (!apply(steps_[active_[k]], p, dst, arena, error)) return false;
    if (!last) cur.swap(next);
  }
  return true;
}

}  // namespace lmlab
