// Byte-level BPE training (Sennrich et al. 2016, Algorithm 1, on bytes as in GPT-2) with
// incremental pair counts, the scheme of HF tokenizers' BpeTrainer: each distinct pre-tokenized
// piece ("word") is counted once with its frequency; pair -> count and pair -> words are kept, and
// a merge touches only the words that hold the merged pair. Best pair: max-heap, lazy invalidation.
#include <algorithm>
#include <chrono>
#include <deque>
#include <unordered_map>

#include "lmlab/core/error.h"
#include "lmlab/core/parallel.h"
#include "lmlab/tokenizer/byte_level.h"
#include "lmlab/tokenizer/tokenizer.h"

namespace lmlab {

// Tie-breaking (a documented contract, so results depend neither on hashing nor on thread count):
// among pairs with equal count, the one whose (left bytes, right bytes) is lexicographically
// smallest, bytes compared as unsigned, wins. Ids: special tokens 0..S-1, byte b gets S+b, then
// merged tokens in merge order; a merge whose concatenation is already a token reuses its id (as
// HF does). Special tokens are added tokens only, not part of the model vocab.

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
using PieceCounts = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;

struct Word {
  std::vector<int32_t> syms;
  int64_t freq;
};

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t left_of(uint64_t k) { return int32_t(k >> 32); }
int32_t right_of(uint64_t k) { return int32_t(k & 0xFFFFFFFFu); }

// Pre-tokenizes and counts pieces, texts split into one contiguous slice per thread. Counts are
// sums, so the result does not depend on the slicing; the caller sorts the pieces.
PieceCounts count_pieces(const std::vector<std::string>& texts, const PreTokenizer& pre,
                         const AddedTokenMatcher& specials, int threads, int64_t* total_pieces) {
  const int64_t n = int64_t(texts.size());
  const int slices = int(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  // Slice boundaries balanced by bytes, so one thread does not get all the long documents.
  std::vector<int64_t> bounds{0};
  {
    int64_t total = 0, acc = 0;
    for (const auto& t : texts) total += int64_t(t.size());
    for (int64_t i = 0; i < n && int(bounds.size()) < slices; ++i) {
      acc += int64_t(texts[size_t(i)].size());
      if (acc * slices >= total * int64_t(bounds.size())) bounds.push_back(i + 1);
    }
    while (int(bounds.size()) <= slices) bounds.push_back(n);
    bounds.back() = n;
  }
  std::vector<PieceCounts> local(static_cast<size_t>(slices));
  std::vector<int64_t> pieces_seen(static_cast<size_t>(slices), 0);
  std::vector<std::string> errors(static_cast<size_t>(slices));
  parallel_for(0, slices, 1, [&](int64_t lo, int64_t hi) {
    std::vector<AddedTokenMatcher::Segment> segs;
    std::vector<std::string_view> pieces;
    std::deque<std::string> arena;
    for (int64_t s = lo; s < hi; ++s) {
      PieceCounts& counts = local[size_t(s)];
      for (int64_t i = bounds[size_t(s)]; i < bounds[size_t(s) + 1] && errors[size_t(s)].empty(); ++i) {
        std::string_view text = texts[size_t(i)];
        segs.clear();
        specials.split(text, true, segs);
        for (const auto& seg : segs) {
          if (seg.id >= 0) continue;  // special tokens in training text are never merged into
          pieces.clear();
          arena.clear();
          if (!pre.split(text.substr(seg.begin, seg.end - seg.begin), pieces, arena, &errors[size_t(s)])) break;
          pieces_seen[size_t(s)] += int64_t(pieces.size());
          for (std::string_view p : pieces) {
            auto it = counts.find(p);
            if (it == counts.end()) counts.emplace(std::string(p), 1);
            else ++it->second;
          }
        }
      }
    }
  });
  for (const std::string& e : errors)
    if (!e.empty()) throw ValueError(e);
  PieceCounts all = std::move(local[0]);
  for (size_t s = 1; s < local.size(); ++s)
    for (auto& [k, v] : local[s]) all[k] += v;
  *total_pieces = 0;
  for (int64_t c : pieces_seen) *total_pieces += c;
  return all;
}

class MergeLoop {
 public:
  MergeLoop(std::vector<Word> words, std::vector<std::string> token_bytes, int32_t first_byte_id)
      : words_(std::move(words)), bytes_(std::move(token_bytes)) {
    for (int32_t id = first_byte_id; id < int32_t(bytes_.size()); ++id) by_bytes_.emplace(bytes_[id], id);
    for (int32_t w = 0; w < int32_t(words_.size()); ++w) {
      const Word& word = words_[size_t(w)];
      for (size_t i = 0; i + 1 < word.syms.size(); ++i) {
        uint64_t k = pair_key(word.syms[i], word.syms[i + 1]);
        count_[k] += word.freq;
        where_[k].push_back(w);  // duplicates (a pair twice in a word) are removed when used
      }
    }
    for (auto& [k, c] : count_) heap_.push_back({c, k});
    std::make_heap(heap_.begin(), heap_.end(), Lower{this});
  }

  // Runs merges until the vocabulary has `vocab_size` tokens or no pair reaches min_frequency.
  void run(int32_t vocab_size, int64_t min_frequency, std::vector<std::pair<int32_t, int32_t>>& merges,
           std::vector<int64_t>& merge_counts, std::vector<int64_t>& merge_savings) {
    while (int32_t(bytes_.size()) < vocab_size && !heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), Lower{this});
      Entry top = heap_.back();
      heap_.pop_back();
      auto it = count_.find(top.pair);
      int64_t cur = it == count_.end() ? 0 : it->second;
      if (cur != top.count) {  // stale: counts changed since this entry was pushed
        if (cur > 0) push(top.pair, cur);
        continue;
      }
      if (cur < min_frequency || cur <= 0) break;
      int32_t a = left_of(top.pair), b = right_of(top.pair);
      std::string joined = bytes_[size_t(a)] + bytes_[size_t(b)];
      auto found = by_bytes_.find(joined);
      int32_t z = found != by_bytes_.end() ? found->second : int32_t(bytes_.size());
      if (found == by_bytes_.end()) {
        by_bytes_.emplace(joined, z);
        bytes_.push_back(std::move(joined));
      }
      merges.emplace_back(a, b);
      merge_counts.push_back(cur);
      merge_savings.push_back(apply(top.pair, a, b, z));
    }
  }

  std::vector<std::string>& token_bytes() { return bytes_; }

 private:
  struct Entry {
    int64_t count;
    uint64_t pair;
  };
  // Heap order: "x below y" when x has the lower count or, on a tie, the larger byte strings.
  struct Lower {
    const MergeLoop* self;
    bool operator()(const Entry& x, const Entry& y) const {
      if (x.count != y.count) return x.count < y.count;
      const std::string& xa = self->bytes_[size_t(left_of(x.pair))];
      const std::string& ya = self->bytes_[size_t(left_of(y.pair))];
      if (int c = xa.compare(ya)) return c > 0;
      return self->bytes_[size_t(right_of(x.pair))] > self->bytes_[size_t(right_of(y.pair))];
    }
  };

  void push(uint64_t pair, int64_t count) {
    heap_.push_back({count, pair});
    std::push_heap(heap_.begin(), heap_.end(), Lower{this});
  }

  // Replaces every (a, b) in the words that hold it by z, left to right, and updates the counts
  // of the neighbouring pairs. Reading the left neighbour from the rewritten output handles runs
  // like "a b a b" and "a a a" exactly. Returns the number of replacements (tokens saved).
  int64_t apply(uint64_t pair, int32_t a, int32_t b, int32_t z) {
    std::vector<int32_t> ws = std::move(where_[pair]);
    where_.erase(pair);
    std::sort(ws.begin(), ws.end());
    ws.erase(std::unique(ws.begin(), ws.end()), ws.end());
    grown_.clear();
    int64_t saved = 0;
    for (int32_t w : ws) {
      Word& word = words_[size_t(w)];
      const std::vector<int32_t>& s = word.syms;
      const int64_t f = word.freq;
      word_new_.clear();
      auto inc = [&](int32_t x, int32_t y) {
        uint64_t k = pair_key(x, y);
        count_[k] += f;
        grown_.push_back(k);
        if (std::find(word_new_.begin(), word_new_.end(), k) == word_new_.end()) {
          word_new_.push_back(k);
          where_[k].push_back(w);
        }
      };
      auto dec = [&](int32_t x, int32_t y) { count_[pair_key(x, y)] -= f; };
      out_.clear();
      bool changed = false;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          changed = true;
          if (!out_.empty()) {
            dec(out_.back(), a);
            inc(out_.back(), z);
          }
          if (i + 2 < s.size()) {
            dec(b, s[i + 2]);
            inc(z, s[i + 2]);
          }
          out_.push_back(z);
          saved += f;
          i += 2;
        } else {
          out_.push_back(s[i]);
          i += 1;
        }
      }
      if (changed) word.syms.assign(out_.begin(), out_.end());
    }
    count_.erase(pair);
    std::sort(grown_.begin(), grown_.end());
    grown_.erase(std::unique(grown_.begin(), grown_.end()), grown_.end());
    for (uint64_t k : grown_) {
      int64_t c = count_[k];
      if (c > 0) push(k, c);
    }
    return saved;
  }

  std::vector<Word> words_;
  std::vector<std::string> bytes_;  // raw bytes of each token id
  std::unordered_map<std::string, int32_t> by_bytes_;
  std::unordered_map<uint64_t, int64_t> count_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;
  std::vector<Entry> heap_;
  std::vector<int32_t> out_;
  std::vector<uint64_t> grown_, word_new_;
};

}  // namespace

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, const TrainOptions& options, TrainStats* stats) {
  const int32_t S = int32_t(options.special_tokens.size());
  LMLAB_CHECK(options.vocab_size >= S + 256, ConfigError, "[tokenizer] train: vocab_size must be at least ", S + 256,
              " (", S, " special tokens + 256 byte symbols), got ", options.vocab_size);
  std::vector<AddedToken> added;
  for (int32_t i = 0; i < S; ++i) {
    const std::string& s = options.special_tokens[size_t(i)];
    uint8_t byte = 0;
    LMLAB_CHECK(!s.empty() && !byte_level::single_byte(s, &byte), ConfigError, "[tokenizer] train: special token ",
                i, " '", s, "' must be non-empty and not a single byte symbol");
    for (int32_t j = 0; j < i; ++j)
      LMLAB_CHECK(options.special_tokens[size_t(j)] != s, ConfigError, "[tokenizer] train: special token '", s,
                  "' is listed twice");
    AddedToken a;
    a.id = i;
    a.content = s;
    added.push_back(a);
  }
  std::string pattern = options.pattern.empty() ? std::string(preset_pattern(options.preset)) : options.pattern;
  PreTokenizer pre = PreTokenizer::from_pattern(pattern);
  AddedTokenMatcher specials(added);

  double t0 = now_s();
  int threads = options.num_threads > 0 ? options.num_threads : num_threads();
  // nthreads-var is per calling thread in OpenMP, so this does not disturb other threads.
  int saved = num_threads();
  set_num_threads(threads);
  int64_t total_pieces = 0;
  PieceCounts counts;
  try {
    counts = count_pieces(texts, pre, specials, threads, &total_pieces);
  } catch (...) {
    set_num_threads(saved);
    throw;
  }
  set_num_threads(saved);

  // Sorted pieces: word indices, and so every later step, are independent of hashing and threads.
  std::vector<std::pair<std::string_view, int64_t>> sorted;
  sorted.reserve(counts.size());
  for (const auto& [k, v] : counts) sorted.emplace_back(k, v);
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  for (const auto& [piece, freq] : sorted) {
    if (piece.size() < 2) continue;  // a single byte holds no pair
    Word w{{}, freq};
    w.syms.reserve(piece.size());
    for (char c : piece) w.syms.push_back(S + int32_t(uint8_t(c)));
    words.push_back(std::move(w));
  }
  std::vector<std::string> token_bytes;
  for (const AddedToken& a : added) token_bytes.push_back(a.content);
  for (int b = 0; b < 256; ++b) token_bytes.push_back(std::string(1, char(b)));
  double t1 = now_s();

  MergeLoop loop(std::move(words), std::move(token_bytes), S);
  std::vector<std::pair<int32_t, int32_t>> merge_ids;
  std::vector<int64_t> merge_counts, merge_savings;
  loop.run(options.vocab_size, std::max<int64_t>(options.min_frequency, 1), merge_ids, merge_counts, merge_savings);
  double t2 = now_s();

  const std::vector<std::string>& tb = loop.token_bytes();
  std::vector<std::pair<std::string, int32_t>> vocab;
  vocab.reserve(tb.size());
  // Special tokens live in added_tokens only (as in Llama-3 and Qwen files): keeping them out of
  // the model vocab means a learned token can never collide with a special token's text.
  for (int32_t id = S; id < int32_t(tb.size()); ++id) vocab.emplace_back(byte_level::encode(tb[size_t(id)]), id);
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merge_ids.size());
  for (auto [a, b] : merge_ids) merges.emplace_back(byte_level::encode(tb[size_t(a)]), byte_level::encode(tb[size_t(b)]));
  Tokenizer tok = from_parts(vocab, merges, std::move(added), std::move(pre), false, "[tokenizer] train");
  if (stats) {
    stats->pretokenize_seconds = t1 - t0;
    stats->merge_seconds = t2 - t1;
    stats->total_pieces = total_pieces;
    stats->unique_pieces = int64_t(counts.size());
    stats->merge_counts = std::move(merge_counts);
    stats->merge_savings = std::move(merge_savings);
  }
  return tok;
}

}  // namespace lmlab
