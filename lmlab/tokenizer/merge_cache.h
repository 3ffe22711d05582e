// A bounded, thread-safe cache from a pre-tokenized piece (raw bytes) to its BPE ids. Text repeats
// the same words over and over, so most pieces skip the merge loop entirely (openai/gpt-2
// encoder.py keeps the same kind of cache). Sharded by hash so threads rarely wait on one lock;
// a full shard is simply cleared (cheap, and hot pieces come back at once).
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lmlab {

class MergeCache {
 public:
  static constexpr size_t kShards = 32;
  static constexpr size_t kMaxPieceBytes = 64;  // longer pieces are rare and not worth the memory

  explicit MergeCache(size_t capacity = 1 << 16) : per_shard_(capacity / kShards + 1) {}
  // Copies start empty: a cache is an optimisation, not state.
  MergeCache(const MergeCache& o) : per_shard_(o.per_shard_) {}
  MergeCache& operator=(const MergeCache& o) {
    if (this != &o) {
      clear();
      per_shard_ = o.per_shard_;
    }
    return *this;
  }

  // Appends the cached ids of `piece` to `out` and returns true on a hit.
  bool lookup(std::string_view piece, std::vector<int32_t>& out) const;
  void insert(std::string_view piece, const int32_t* ids, size_t n) const;
  void clear() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map;
  };
  size_t per_shard_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace lmlab
