// Storage: a reference-counted byte buffer (64-byte aligned) or a borrowed region
// (e.g. a memory-mapped file) kept alive by an owner handle.
#pragma once
#include <cstddef>
#include <memory>

#include "lmlab/core/device.h"

namespace lmlab {

class Storage {
 public:
  // Allocates nbytes, 64-byte aligned, uninitialised.
  explicit Storage(size_t nbytes, Device dev = Device::CPU);
  // Wraps external memory; `owner` keeps it alive (a mmap, another storage).
  Storage(void* data, size_t nbytes, std::shared_ptr<void> owner, Device dev = Device::CPU);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  std::shared_ptr<void> owner_;
  bool owned_ = false;
  Device device_ = Device::CPU;
};

// Frees the large blocks the allocator keeps for reuse (see storage.cpp), and how many bytes it holds.
void release_cached_memory();
size_t cached_memory_bytes();

}  // namespace lmlab
