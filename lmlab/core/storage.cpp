// Aligned allocation for Storage.
#include "lmlab/core/storage.h"

#include <cstdlib>
#include <new>

#include "lmlab/core/error.h"

namespace lmlab {

Storage::Storage(size_t nbytes, Device dev) : nbytes_(nbytes), owned_(true), device_(dev) {
  LMLAB_CHECK(dev == Device::CPU, Error, "[storage] device ", device_name(dev), " is not available in this build");
  size_t sz = (nbytes + 63) / 64 * 64;
  if (sz == 0) sz = 64;
  data_ = std::aligned_alloc(64, sz);
  if (!data_) throw std::bad_alloc();
}

Storage::Storage(void* data, size_t nbytes, std::shared_ptr<void> owner, Device dev)
    : data_(data), nbytes_(nbytes), owner_(std::move(owner)), owned_(false), device_(dev) {}

Storage::~Storage() {
  if (owned_) std::free(data_);
}

}  // namespace lmlab
