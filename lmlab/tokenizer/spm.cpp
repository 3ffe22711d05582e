// SentencePiece-style BPE model: validation, the two merge loops, and the merges <-> scores
// conversions (see spm.h). References: HF tokenizers models/bpe/{model,word}.rs (byte_fallback,
// fuse_unk, merge by rank), llama.cpp src/llama-vocab.cpp llm_tokenizer_spm_session (merge by
// score, byte fallback in resegment), transformers convert_slow_tokenizer.py generate_merges.
#include "lmlab/tokenizer/spm.h"

#include <algorithm>
#include <cstdio>

#include "lmlab/core/error.h"

namespace lmlab {

namespace {

constexpr int64_t kMaxId = int64_t(1) << 24;  // same bound as BpeModel

// Length of the UTF-8 character at s[0]: 2..4 for a well-formed sequence, else 1 (a stray or
// malformed byte is a character of its own, so invalid input still encodes, byte by byte).
size_t char_len(std::string_view s) {
  const auto c = uint8_t(s[0]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (n > s.size()) return 1;
  for (size_t i = 1; i < n; ++i)
    if ((uint8_t(s[i]) & 0xC0) != 0x80) return 1;
  return n;
}

size_t count_chars(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); i += char_len(s.substr(i))) ++n;
  return n;
}

std::string byte_token(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  return buf;
}

// The byte of "<0xXX>" (upper- or lower-case hex), or -1.
int parse_byte_token(std::string_view s) {
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
  int v = 0;
  for (char c : s.substr(3, 2)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

void SpmModel::index(const std::string& where) {
  vocab_.reserve(pieces_.size());
  std::fill(std::begin(byte_id_), std::end(byte_id_), -1);
  for (int32_t id = 0; id < id_limit(); ++id) {
    if (!present_[size_t(id)]) continue;
    const std::string& t = pieces_[size_t(id)].text;
    auto [it, fresh] = vocab_.emplace(t, id);
    LMLAB_CHECK(fresh, FormatError, where, ": token '", t, "' appears twice (ids ", it->second, " and ", id,
                "); expected unique tokens");
    int b = parse_byte_token(t);
    if (b >= 0 && (algorithm_ == Algorithm::MergeRank || pieces_[size_t(id)].type == SpmTokenType::Byte))
      byte_id_[b] = id;
  }
}

SpmModel SpmModel::from_merges(const std::vector<std::pair<std::string, int32_t>>& vocab,
                               const std::vector<std::pair<std::string, std::string>>& merges,
                               std::optional<std::string> unk_token, bool byte_fallback, bool fuse_unk,
                               bool ignore_merges, const std::string& where) {
  SpmModel m;
  m.algorithm_ = Algorithm::MergeRank;
  m.byte_fallback_ = byte_fallback;
  m.fuse_unk_ = fuse_unk;
  m.ignore_merges_ = ignore_merges;
  int64_t max_id = -1;
  for (const auto& [tok, id] : vocab) {
    LMLAB_CHECK(id >= 0 && id < kMaxId, FormatError, where, ": model.vocab['", tok, "']: expected an id in [0, ", kMaxId,
                "), got ", id);
    max_id = std::max<int64_t>(max_id, id);
  }
  m.pieces_.assign(size_t(max_id + 1), Piece{});
  m.present_.assign(size_t(max_id + 1), 0);
  for (const auto& [tok, id] : vocab) {
    LMLAB_CHECK(!m.present_[size_t(id)], FormatError, where, ": model.vocab: id ", id, " is used twice ('",
                m.pieces_[size_t(id)].text, "' and '", tok, "'); expected unique ids");
    m.present_[size_t(id)] = 1;
    m.pieces_[size_t(id)] = Piece{tok, 0.f, parse_byte_token(tok) >= 0 ? SpmTokenType::Byte : SpmTokenType::Normal};
  }
  m.index(where);
  if (unk_token) {
    auto it = m.vocab_.find(*unk_token);
    LMLAB_CHECK(it != m.vocab_.end(), FormatError, where, ": model.unk_token '", *unk_token,
                "' is not in model.vocab");
    m.unk_ = it->second;
    m.pieces_[size_t(it->second)].type = SpmTokenType::Unknown;
  }
  m.merges_.reserve(merges.size());
  m.merge_index_.reserve(merges.size() * 2);
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& l = merges[r].first;  // not a structured binding: clang 14 cannot capture those
    const std::string& rt = merges[r].second;
    auto text = [&] { return str_cat("model.merges[", r, "] '", l, " ", rt, "'"); };
    auto li = m.vocab_.find(l), ri = m.vocab_.find(rt), ci = m.vocab_.find(l + rt);
    LMLAB_CHECK(li != m.vocab_.end(), FormatError, where, ": ", text(), ": left part '", l, "' is not in model.vocab");
    LMLAB_CHECK(ri != m.vocab_.end(), FormatError, where, ": ", text(), ": right part '", rt,
                "' is not in model.vocab");
    LMLAB_CHECK(ci != m.vocab_.end(), FormatError, where, ": ", text(), ": merged token '", l + rt,
                "' is not in model.vocab");
    m.merges_.emplace_back(li->second, ri->second);
    m.merge_index_.emplace(key(li->second, ri->second), MergeInfo{int32_t(r), ci->second});
  }
  return m;
}

SpmModel SpmModel::from_scores(std::vector<Piece> pieces, std::optional<int32_t> unk_id, const std::string& where) {
  SpmModel m;
  m.algorithm_ = Algorithm::Score;
  LMLAB_CHECK(int64_t(pieces.size()) < kMaxId, FormatError, where, ": ", pieces.size(), " tokens, expected fewer than ",
              kMaxId);
  m.pieces_ = std::move(pieces);
  m.present_.assign(m.pieces_.size(), 1);
  for (size_t id = 0; id < m.pieces_.size(); ++id) {
    const Piece& p = m.pieces_[id];
    LMLAB_CHECK(p.type != SpmTokenType::Byte || parse_byte_token(p.text) >= 0, FormatError, where, ": token ", id,
                " '", p.text, "' has type byte (6) but is not of the form <0xXX>");
  }
  m.index(where);
  if (unk_id) {
    LMLAB_CHECK(*unk_id >= 0 && *unk_id < m.id_limit(), FormatError, where, ": unknown token id ", *unk_id,
                " is not in [0, ", m.id_limit(), ")");
    m.unk_ = unk_id;
  }
  for (int b = 0; b < 256; ++b)
    LMLAB_CHECK(m.byte_id_[b] >= 0 || m.unk_, FormatError, where, ": no byte token '", byte_token(uint8_t(b)),
                "' (type 6) and no unknown token; characters outside the vocab could not be encoded");
  return m;
}

std::optional<int32_t> SpmModel::token_to_id(std::string_view text) const {
  auto it = vocab_.find(text);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const SpmModel::Piece* SpmModel::piece(int32_t id) const {
  if (id < 0 || id >= id_limit() || !present_[size_t(id)]) return nullptr;
  return &pieces_[size_t(id)];
}

std::optional<std::string> SpmModel::unk_token() const {
  if (!unk_) return std::nullopt;
  return pieces_[size_t(*unk_)].text;
}

void SpmModel::encode_piece(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  if (ignore_merges_) {
    if (auto id = token_to_id(text)) {
      out.push_back(*id);
      return;
    }
  }
  const bool cacheable = text.size() <= MergeCache::kMaxPieceBytes;
  if (cacheable && cache_.lookup(text, out)) return;
  size_t start = out.size();
  if (algorithm_ == Algorithm::MergeRank) merge_by_rank(text, out);
  else merge_by_score(text, out);
  if (cacheable) cache_.insert(text, out.data() + start, out.size() - start);
}

// A character outside the vocab, HF style: all its bytes when byte_fallback and each has a
// token, else the unknown token (one for a run of them with fuse_unk), else nothing.
void SpmModel::push_char_fallback(std::string_view ch, std::vector<int32_t>& out, bool& last_unk) const {
  if (byte_fallback_) {
    bool all = true;
    for (char c : ch) all = all && byte_id_[uint8_t(c)] >= 0;
    if (all) {
      for (char c : ch) out.push_back(byte_id_[uint8_t(c)]);
      last_unk = false;
      return;
    }
  }
  if (!unk_) return;
  if (!(fuse_unk_ && last_unk)) out.push_back(*unk_);
  last_unk = true;
}

void SpmModel::merge_by_rank(std::string_view text, std::vector<int32_t>& out) const {
  // Same linked-list + min-heap scheme as BpeModel::merge_piece: entries (rank, left position),
  // stale when the position is gone or the pair there now has another rank; equal ranks merge
  // leftmost first (HF word.rs orders its queue the same way).
  struct Entry {
    int32_t rank;
    int32_t pos;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> id, prev, next;
  thread_local std::vector<Entry> heap;
  id.clear();
  bool last_unk = false;
  for (size_t i = 0; i < text.size();) {
    size_t n = char_len(text.substr(i));
    std::string_view ch = text.substr(i, n);
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      id.push_back(it->second);
      last_unk = false;
    } else {
      push_char_fallback(ch, id, last_unk);
    }
    i += n;
  }
  const int32_t n = int32_t(id.size());
  if (n == 0) return;
  prev.resize(size_t(n));
  next.resize(size_t(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto find = [&](int32_t p) -> const MergeInfo* {
    auto it = merge_index_.find(key(id[p], id[next[p]]));
    return it == merge_index_.end() ? nullptr : &it->second;
  };
  auto push = [&](int32_t p) {
    if (p < 0 || next[p] < 0) return;
    if (const MergeInfo* m = find(p)) {
      heap.push_back({m->rank, p});
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    Entry e = heap.back();
    heap.pop_back();
    int32_t p = e.pos;
    if (id[p] < 0 || next[p] < 0) continue;
    const MergeInfo* m = find(p);
    if (!m || m->rank != e.rank) continue;
    int32_t q = next[p];
    id[p] = m->result;
    id[q] = -1;
    next[p] = next[q];
    if (next[q] >= 0) prev[next[q]] = p;
    push(prev[p]);
    push(p);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

void SpmModel::merge_by_score(std::string_view text, std::vector<int32_t>& out) const {
  // llama.cpp's loop: symbols are byte spans [begin, begin + len); a candidate (score, left,
  // size) is stale once either side changed length (a merge only grows the left symbol and
  // empties the right one, so the sizes tell). Highest score first, then leftmost.
  struct Entry {
    float score;
    int32_t left;
    uint32_t size;
    bool operator<(const Entry& o) const { return score != o.score ? score < o.score : left > o.left; }
  };
  thread_local std::vector<uint32_t> begin, len;
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<Entry> heap;
  begin.clear();
  len.clear();
  for (size_t i = 0; i < text.size();) {
    size_t n = char_len(text.substr(i));
    begin.push_back(uint32_t(i));
    len.push_back(uint32_t(n));
    i += n;
  }
  const int32_t n = int32_t(begin.size());
  prev.resize(size_t(n));
  next.resize(size_t(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto push = [&](int32_t l) {
    if (l < 0 || next[l] < 0) return;
    uint32_t size = len[l] + len[next[l]];
    auto it = vocab_.find(text.substr(begin[l], size));
    if (it == vocab_.end()) return;
    heap.push_back({pieces_[size_t(it->second)].score, l, size});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Entry e = heap.back();
    heap.pop_back();
    int32_t l = e.left, r = next[l];
    if (len[l] == 0 || r < 0 || len[r] == 0 || len[l] + len[r] != e.size) continue;
    len[l] += len[r];
    len[r] = 0;
    next[l] = next[r];
    if (next[r] >= 0) prev[next[r]] = l;
    push(prev[l]);
    push(l);
  }
  for (int32_t i = 0; i >= 0 && n > 0; i = next[i]) {
    std::string_view sym = text.substr(begin[i], len[i]);
    if (auto it = vocab_.find(sym); it != vocab_.end()) {
      out.push_back(it->second);
      continue;
    }
    // Only single characters reach here (merges always form tokens); llama.cpp writes their
    // bytes. from_scores guaranteed a byte token or an unknown token for every byte.
    for (char c : sym) out.push_back(byte_id_[uint8_t(c)] >= 0 ? byte_id_[uint8_t(c)] : *unk_);
  }
}

std::vector<std::pair<int32_t, int32_t>> SpmModel::merges() const {
  if (algorithm_ == Algorithm::MergeRank) return merges_;
  struct Cand {
    float score;
    size_t left_chars, right_chars;
    int32_t l, r;
  };
  std::vector<Cand> all;
  std::vector<Cand> local;
  for (int32_t id = 0; id < id_limit(); ++id) {
    if (!present_[size_t(id)]) continue;
    const std::string& t = pieces_[size_t(id)].text;
    if (t.empty()) continue;
    local.clear();
    for (size_t cut = char_len(t); cut < t.size(); cut += char_len(std::string_view(t).substr(cut))) {
      auto li = vocab_.find(std::string_view(t).substr(0, cut)), ri = vocab_.find(std::string_view(t).substr(cut));
      if (li == vocab_.end() || ri == vocab_.end()) continue;
      local.push_back({pieces_[size_t(id)].score, count_chars(li->first), count_chars(ri->first), li->second,
                       ri->second});
    }
    std::stable_sort(local.begin(), local.end(),
                     [](const Cand& a, const Cand& b) { return a.l != b.l ? a.l < b.l : a.r < b.r; });
    all.insert(all.end(), local.begin(), local.end());
  }
  // Python's sorted(key=(score, len(l), len(r)), reverse=True) is stable: equal keys keep order.
  std::stable_sort(all.begin(), all.end(), [](const Cand& a, const Cand& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_chars != b.left_chars) return a.left_chars > b.left_chars;
    return a.right_chars > b.right_chars;
  });
  std::vector<std::pair<int32_t, int32_t>> out;
  out.reserve(all.size());
  for (const Cand& c : all) out.emplace_back(c.l, c.r);
  return out;
}

std::vector<float> SpmModel::scores() const {
  std::vector<float> s(pieces_.size());
  if (algorithm_ == Algorithm::Score) {
    for (size_t i = 0; i < pieces_.size(); ++i) s[i] = pieces_[i].score;
    return s;
  }
  std::fill(s.begin(), s.end(), -float(merges_.size() + 1));
  std::vector<uint8_t> made(pieces_.size(), 0);
  for (size_t r = 0; r < merges_.size(); ++r) {
    int32_t result = merge_index_.at(key(merges_[r].first, merges_[r].second)).result;
    if (made[size_t(result)]) continue;
    made[size_t(result)] = 1;
    s[size_t(result)] = -float(r + 1);
  }
  return s;
}

}  // namespace lmlab
