// Token shards: a flat array of token ids on disk, memory-mapped for reading.
// Layout: 32-byte header {magic "LMLABTOK", u32 version = 1, u32 bytes per token (2 or 4),
// u64 token count, u64 vocab size}, then the ids little-endian. u16 when the vocabulary fits.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lmlab {

// Writes atomically (temp file, fsync, rename). Ids must be < vocab_size.
void write_token_shard(const std::string& path, const std::vector<uint32_t>& ids, uint64_t vocab_size);

class TokenShard {
 public:
  // Opens and validates; throws IoError / FormatError naming the file and what was wrong.
  static TokenShard open(const std::string& path);
  uint64_t size() const { return n_; }
  uint64_t vocab_size() const { return vocab_; }
  uint32_t at(uint64_t i) const { return width_ == 2 ? reinterpret_cast<const uint16_t*>(data_)[i]
                                                     : reinterpret_cast<const uint32_t*>(data_)[i]; }
  // Copies n ids starting at `start` into out (as int64); bounds-checked.
  void read(uint64_t start, uint64_t n, int64_t* out) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<void> map_;
  const char* data_ = nullptr;
  uint32_t width_ = 2;
  uint64_t n_ = 0, vocab_ = 0;
};

}  // namespace lmlab
