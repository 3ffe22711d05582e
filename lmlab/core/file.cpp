// Whole-file reads, atomic writes and read-only mappings.
#include "lmlab/core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lmlab/core/error.h"

namespace lmlab {

std::string read_text_file(const std::string& path, const char* component) {
  std::ifstream f(path, std::ios::binary);
  LMLAB_CHECK(f.good(), IoError, "[", component, "] cannot read '", path, "': ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  LMLAB_CHECK(!f.bad(), IoError, "[", component, "] read error on '", path, "'");
  return ss.str();
}

AtomicFile::AtomicFile(const std::string& path, const char* component) : path_(path), component_(component) {
  static std::atomic<uint64_t> counter{0};  // unique temp names across threads of one process
  tmp_ = str_cat(path, ".tmp.", ::getpid(), ".", counter++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LMLAB_CHECK(fd_ >= 0, IoError, "[", component, "] cannot create '", tmp_, "': ", std::strerror(errno));
}

AtomicFile::~AtomicFile() { abandon(); }

void AtomicFile::abandon() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
  fd_ = -1;
}

void AtomicFile::write(const void* data, size_t n) {
  LMLAB_CHECK(fd_ >= 0, IoError, "[", component_, "] write to '", path_, "' after commit or failure");
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd_, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      abandon();
      throw IoError(str_cat("[", component_, "] write to '", tmp_, "' failed: ", std::strerror(e)));
    }
    done += size_t(w);
  }
  written_ += n;
}

void AtomicFile::commit() {
  LMLAB_CHECK(fd_ >= 0, IoError, "[", component_, "] commit of '", path_, "' after commit or failure");
  bool ok = ::fsync(fd_) == 0;
  ok = ::close(fd_) == 0 && ok;
  fd_ = -1;
  if (!ok) {
    int e = errno;
    ::unlink(tmp_.c_str());
    throw IoError(str_cat("[", component_, "] fsync/close of '", tmp_, "' failed: ", std::strerror(e)));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp_.c_str());
    throw IoError(str_cat("[", component_, "] rename '", tmp_, "' -> '", path_, "' failed: ", std::strerror(e)));
  }
  std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/'));
  if (dir.empty()) dir = "/";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // best effort: makes the rename itself durable
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes, const char* component) {
  AtomicFile f(path, component);
  f.write(bytes);
  f.commit();
}

namespace {
struct Mapping {
  void* addr = nullptr;
  size_t len = 0;
  ~Mapping() {
    if (addr && len) munmap(addr, len);
  }
};
}  // namespace

MappedFile map_file(const std::string& path, const char* component) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LMLAB_CHECK(fd >= 0, IoError, "[", component, "] cannot open '", path, "': ", std::strerror(errno));
  struct stat stt;
  if (fstat(fd, &stt) != 0) {
    int e = errno;
    ::close(fd);
    throw IoError(str_cat("[", component, "] cannot stat '", path, "': ", std::strerror(e)));
  }
  auto m = std::make_shared<Mapping>();
  size_t size = size_t(stt.st_size);
  if (size > 0) {
    void* a = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw IoError(str_cat("[", component, "] cannot map '", path, "': ", std::strerror(e)));
    }
    m->addr = a;
    m->len = size;
  }
  ::close(fd);
  return {m, static_cast<const char*>(m->addr), size};
}

MappedFile map_bytes(const std::string& bytes) {
  auto buf = std::shared_ptr<char>(new char[bytes.size() + 1], std::default_delete<char[]>());
  std::memcpy(buf.get(), bytes.data(), bytes.size());
  return {buf, buf.get(), bytes.size()};
}

}  // namespace lmlab
