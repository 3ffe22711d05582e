// Added-token matching (see added_tokens.h): a first-byte index plus a direct comparison. There
// are at most a few hundred added tokens in real models, so this beats building an automaton.
#include "lmlab/tokenizer/added_tokens.h"

#include <algorithm>

namespace lmlab {

namespace {
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& t : tokens)
    if (!t.content.empty()) tokens_.push_back(t);
  for (uint32_t i = 0; i < tokens_.size(); ++i) by_first_[uint8_t(tokens_[i].content[0])].push_back(i);
  for (auto& v : by_first_)
    std::stable_sort(v.begin(), v.end(),
                     [&](uint32_t a, uint32_t b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

void AddedTokenMatcher::split(std::string_view text, bool allow_special, std::vector<Segment>& out) const {
  const size_t n = text.size();
  size_t pending = 0;  // start of the plain text not yet emitted
  size_t i = 0;
  while (i < n) {
    const AddedToken* hit = nullptr;
    for (uint32_t k : by_first_[uint8_t(text[i])]) {
      const AddedToken& t = tokens_[k];
      if (t.special && !allow_special) continue;
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      size_t e = i + t.content.size();
      if (t.single_word && ((i > 0 && is_word(text[i - 1])) || (e < n && is_word(text[e])))) continue;
      hit = &t;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t b = i, e = i + hit->content.size();
    if (hit->lstrip)
      while (b > pending && is_space(text[b - 1])) --b;
    if (hit->rstrip)
      while (e < n && is_space(text[e])) ++e;
    if (b > pending) out.push_back({pending, b, -1});
    out.push_back({b, e, hit->id});
    pending = i = e;
  }
  if (pending < n) out.push_back({pending, n, -1});
}

}  // namespace lmlab
