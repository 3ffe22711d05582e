// Read-only file mappings.
#include "lmlab/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lmlab/core/error.h"

namespace lmlab {

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
