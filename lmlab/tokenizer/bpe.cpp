// Byte-level BPE model: validation, indexing and the rank-ordered merge loop (see bpe.h).
#include "lmlab/tokenizer/bpe.h"

#include <algorithm>

#include "lmlab/core/error.h"
#include "lmlab/tokenizer/byte_level.h"

namespace lmlab {

namespace {
// Ids beyond this are surely a corrupt file; refusing them keeps a typo from allocating gigabytes.
constexpr int64_t kMaxId = int64_t(1) << 24;
}  // namespace

BpeModel::BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges,
                   const std::string& where)
    : ignore_merges_(ignore_merges) {
  int64_t max_id = -1;
  for (const auto& [tok, id] : vocab) {
    LMLAB_CHECK(id >= 0 && id < kMaxId, FormatError, where, ": model.vocab['", tok, "']: expected an id in [0, ", kMaxId,
                "), got ", id);
    max_id = std::max<int64_t>(max_id, id);
  }
  tokens_.assign(size_t(max_id + 1), std::string());
  bytes_.assign(size_t(max_id + 1), std::string());
  present_.assign(size_t(max_id + 1), 0);
  vocab_.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    LMLAB_CHECK(!present_[id], FormatError, where, ": model.vocab: id ", id, " is used twice ('", tokens_[id],
                "' and '", tok, "'); expected unique ids");
    LMLAB_CHECK(vocab_.emplace(tok, id).second, FormatError, where, ": model.vocab: token '", tok,
                "' appears twice; expected unique tokens");
    present_[id] = 1;
    tokens_[id] = tok;
    bytes_[id] = byte_level::decode(tok);
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(byte_level::byte_to_utf8(uint8_t(b)));
    LMLAB_CHECK(it != vocab_.end(), FormatError, where, ": model.vocab lacks the byte symbol '",
                byte_level::byte_to_utf8(uint8_t(b)), "' (byte 0x", "0123456789abcdef"[b >> 4], "0123456789abcdef"[b & 15],
                "); a byte-level BPE vocab must hold all 256");
    byte_id_[b] = it->second;
  }
  merges_.reserve(merges.size());
  merge_index_.reserve(merges.size() * 2);
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& l = merges[r].first;  // not a structured binding: clang 14 cannot capture those
    const std::string& rt = merges[r].second;
    auto text = [&] { return str_cat("model.merges[", r, "] '", l, " ", rt, "'"); };
    auto li = vocab_.find(l), ri = vocab_.find(rt), ci = vocab_.find(l + rt);
    LMLAB_CHECK(li != vocab_.end(), FormatError, where, ": ", text(), ": left part '", l, "' is not in model.vocab");
    LMLAB_CHECK(ri != vocab_.end(), FormatError, where, ": ", text(), ": right part '", rt,
                "' is not in model.vocab");
    LMLAB_CHECK(ci != vocab_.end(), FormatError, where, ": ", text(), ": merged token '", l + rt,
                "' is not in model.vocab");
    merges_.emplace_back(li->second, ri->second);
    // A repeated pair keeps its first (lowest) rank, as a rank lookup in HF does.
    merge_index_.emplace(key(li->second, ri->second), MergeInfo{int32_t(r), ci->second});
  }
}

const BpeModel::MergeInfo* BpeModel::find_merge(int32_t a, int32_t b) const {
  auto it = merge_index_.find(key(a, b));
  return it == merge_index_.end() ? nullptr : &it->second;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view mapped) const {
  auto it = vocab_.find(std::string(mapped));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || id >= id_limit() || !present_[id]) return nullptr;
  return &tokens_[id];
}

const std::string* BpeModel::token_bytes(int32_t id) const {
  if (id < 0 || id >= id_limit() || !present_[id]) return nullptr;
  return &bytes_[id];
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1) {
    out.push_back(byte_id_[uint8_t(bytes[0])]);
    return;
  }
  if (cache_.lookup(bytes, out)) return;
  size_t start = out.size();
  if (ignore_merges_) {
    auto it = vocab_.find(byte_level::encode(bytes));
    if (it != vocab_.end()) out.push_back(it->second);
    else merge_piece(bytes, out);
  } else {
    merge_piece(bytes, out);
  }
  cache_.insert(bytes, out.data() + start, out.size() - start);
}

void BpeModel::merge_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  // Symbols form a doubly linked list over positions 0..n-1; a merge keeps the left position and
  // unlinks the right one. Heap entries are (rank, left position); an entry is stale when its
  // position is gone or the pair there now has another rank (ranks are unique per pair, so an
  // equal rank means the same pair). Ordering by position among equal ranks merges the leftmost
  // occurrence first, which is what sequentially applying each merge to the whole word gives.
  struct Entry {
    int32_t rank;
    int32_t pos;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> id, prev, next;
  thread_local std::vector<Entry> heap;
  const int32_t n = int32_t(bytes.size());
  id.resize(size_t(n));
  prev.resize(size_t(n));
  next.resize(size_t(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    id[i] = byte_id_[uint8_t(bytes[size_t(i)])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto push = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    if (const MergeInfo* m = find_merge(id[pos], id[next[pos]])) {
      heap.push_back({m->rank, pos});
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
    const MergeInfo* m = find_merge(id[p], id[next[p]]);
    if (!m || m->rank != e.rank) continue;
    int32_t q = next[p];
    id[p] = m->result;
    id[q] = -1;  // unlinked
    next[p] = next[q];
    if (next[q] >= 0) prev[next[q]] = p;
    push(prev[p]);
    push(p);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

}  // namespace lmlab
