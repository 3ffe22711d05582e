// Token shard writer and mmap reader.
#include "lmlab/data/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lmlab/core/error.h"
#include "lmlab/core/file.h"

namespace lmlab {

namespace {
constexpr char kMagic[8] = {'L', 'M', 'L', 'A', 'B', 'T', 'O', 'K'};
constexpr size_t kHeader = 32;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t width;
  uint64_t count;
  uint64_t vocab;
};
static_assert(sizeof(Header) == kHeader);

}  // namespace

void write_token_shard(const std::string& path, const std::vector<uint32_t>& ids, uint64_t vocab_size) {
  LMLAB_CHECK(vocab_size > 0, ValueError, "[token_shard] vocab_size must be positive");
  Header h;
  std::memcpy(h.magic, kMagic, 8);
  h.version = 1;
  h.width = vocab_size <= 65536 ? 2 : 4;
  h.count = ids.size();
  h.vocab = vocab_size;
  std::string buf(kHeader + ids.size() * h.width, '\0');
  std::memcpy(buf.data(), &h, kHeader);
  for (size_t i = 0; i < ids.size(); ++i) {
    LMLAB_CHECK(ids[i] < vocab_size, ValueError, "[token_shard] id ", ids[i], " at position ", i,
                " is outside the vocabulary of ", vocab_size);
    if (h.width == 2) {
      uint16_t v = uint16_t(ids[i]);
      std::memcpy(buf.data() + kHeader + 2 * i, &v, 2);
    } else {
      std::memcpy(buf.data() + kHeader + 4 * i, &ids[i], 4);
    }
  }
  write_file_atomic(path, buf, "token_shard");
}

TokenShard TokenShard::open(const std::string& path) {
  MappedFile m;
  try {
    m = map_file(path, "token_shard");
  } catch (const IoError& e) {
    throw IoError(str_cat(e.what(), " (run `lmlab data prepare` and `lmlab tokenizer train` first)"));
  }
  size_t size = m.size;
  LMLAB_CHECK(size >= kHeader, FormatError, "[token_shard] '", path, "' is ", size,
              " bytes, shorter than the 32-byte header");
  Header h;
  std::memcpy(&h, m.data, kHeader);
  LMLAB_CHECK(std::memcmp(h.magic, kMagic, 8) == 0, FormatError, "[token_shard] '", path,
              "' is not a token shard (bad magic)");
  LMLAB_CHECK(h.version == 1, FormatError, "[token_shard] '", path, "' has version ", h.version, ", expected 1");
  LMLAB_CHECK(h.width == 2 || h.width == 4, FormatError, "[token_shard] '", path, "' has token width ", h.width,
              ", expected 2 or 4");
  LMLAB_CHECK(h.count <= (size - kHeader) / h.width && h.count * h.width == size - kHeader, FormatError,
              "[token_shard] '", path, "' header says ", h.count, " tokens but the file holds ",
              (size - kHeader) / h.width, " (truncated?)");
  TokenShard s;
  s.path_ = path;
  s.map_ = m.owner;
  s.data_ = m.data + kHeader;
  s.width_ = h.width;
  s.n_ = h.count;
  s.vocab_ = h.vocab;
  return s;
}

void TokenShard::read(uint64_t start, uint64_t n, int64_t* out) const {
  LMLAB_CHECK(start + n <= n_ && start + n >= start, IndexError, "[token_shard] read of [", start, ", ", start + n,
              ") outside '", path_, "' of ", n_, " tokens");
  for (uint64_t i = 0; i < n; ++i) out[i] = int64_t(at(start + i));
}

}  // namespace lmlab
