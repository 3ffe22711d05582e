// Sharded merge cache (see merge_cache.h).
#include "lmlab/tokenizer/merge_cache.h"

namespace lmlab {

bool MergeCache::lookup(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() > kMaxPieceBytes) return false;
  Shard& s = shards_[Hash()(piece) % kShards];
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.map.find(piece);
  if (it == s.map.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void MergeCache::insert(std::string_view piece, const int32_t* ids, size_t n) const {
  if (piece.size() > kMaxPieceBytes) return;
  Shard& s = shards_[Hash()(piece) % kShards];
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.map.size() >= per_shard_) s.map.clear();
  s.map.emplace(std::string(piece), std::vector<int32_t>(ids, ids + n));
}

void MergeCache::clear() const {
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    s.map.clear();
  }
}

}  // namespace lmlab
