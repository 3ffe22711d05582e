// Token shard writer and mmap reader.
#include "lmlab/data/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lmlab/core/error.h"

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

void write_all_atomic(const std::string& path, const void* data, size_t n) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LMLAB_CHECK(fd >= 0, IoError, "[token_shard] cannot create '", tmp, "': ", std::strerror(errno));
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw IoError(str_cat("[token_shard] write to '", tmp, "' failed: ", std::strerror(e)));
    }
    done += size_t(w);
  }
  bool ok = ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw IoError(str_cat("[token_shard] cannot finish '", path, "': ", std::strerror(e)));
  }
}

struct Mapping {
  void* addr = nullptr;
  size_t len = 0;
  ~Mapping() {
    if (addr) munmap(addr, len);
  }
};
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
  write_all_atomic(path, buf.data(), buf.size());
}

TokenShard TokenShard::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LMLAB_CHECK(fd >= 0, IoError, "[token_shard] cannot open '", path, "': ", std::strerror(errno),
              " (run `lmlab data prepare` first)");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    throw IoError(str_cat("[token_shard] cannot stat '", path, "'"));
  }
  size_t size = size_t(st.st_size);
  if (size < kHeader) {
    ::close(fd);
    throw FormatError(str_cat("[token_shard] '", path, "' is ", size, " bytes, shorter than the 32-byte header"));
  }
  void* a = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  LMLAB_CHECK(a != MAP_FAILED, IoError, "[token_shard] cannot map '", path, "'");
  auto m = std::make_shared<Mapping>();
  m->addr = a;
  m->len = size;
  Header h;
  std::memcpy(&h, a, kHeader);
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
  s.map_ = m;
  s.data_ = static_cast<const char*>(a) + kHeader;
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
