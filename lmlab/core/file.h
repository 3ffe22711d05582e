// Whole-file I/O shared by every layer that reads or writes files (formats, shards, tokenizers,
// checkpoints, reports): reading a file, writing one atomically, and read-only memory mappings.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lmlab {

// The whole file. IoError "[component] cannot read 'path': why".
std::string read_text_file(const std::string& path, const char* component = "io");

// Writes `bytes` to `path` atomically: a uniquely named temp file in the same folder, fsync, rename,
// fsync of the folder. Readers see the old file or the new one, never a torn one, even if the
// process dies mid-write. IoError names the path and the failing step.
void write_file_atomic(const std::string& path, const std::string& bytes, const char* component = "io");

// The same, piece by piece, for files too big to build in memory (a GGUF being quantized): bytes
// go to a uniquely named temp file beside `path`; commit() fsyncs it, renames it over `path` and
// fsyncs the folder. Destroyed without commit() (an exception mid-write), the temp file is removed
// and `path` is untouched. IoError names the path and the failing step.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path, const char* component = "io");
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  uint64_t written() const { return written_; }
  void commit();

 private:
  std::string path_, tmp_;
  const char* component_;
  int fd_ = -1;
  uint64_t written_ = 0;
  void abandon() noexcept;
};

// A read-only mapping of a whole file; tensors viewing it hold `owner`, so it stays mapped while any
// of them lives.
struct MappedFile {
  std::shared_ptr<void> owner;
  const char* data = nullptr;
  size_t size = 0;
};
// Maps `path` (an empty file maps to size 0). IoError "[component] cannot open/stat/map 'path': why".
MappedFile map_file(const std::string& path, const char* component);
// A private copy of `bytes` presented like a mapping (parsing buffers in tests and fuzzing).
MappedFile map_bytes(const std::string& bytes);

}  // namespace lmlab
