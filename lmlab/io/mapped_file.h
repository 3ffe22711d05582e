// A read-only memory mapping of a whole file, shared by the format readers (safetensors, GGUF).
// Tensors that view the mapping hold `owner`, so the file stays mapped while any of them lives.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace lmlab {

struct MappedFile {
  std::shared_ptr<void> owner;  // unmaps when the last holder goes
  const char* data = nullptr;
  size_t size = 0;
};

// Maps `path` (an empty file maps to size 0). IoError "[component] cannot open/stat/map 'path': why".
MappedFile map_file(const std::string& path, const char* component);
// A private copy of `bytes` presented like a mapping (for parsing buffers: tests, fuzzing).
MappedFile map_bytes(const std::string& bytes);

}  // namespace lmlab
