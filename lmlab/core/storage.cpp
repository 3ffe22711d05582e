// Storage allocation with a caching allocator for large buffers. Training and decoding loops
// allocate the same sizes every step; handing freed blocks back instead of returning them to the
// kernel removes the page-fault + page-zeroing cost of fresh mmap'd memory (measured at ~5% of a
// training step). Blocks >= 2 MiB are 2 MiB aligned and advised for transparent huge pages.
// The cache is capped (LMLAB_ALLOC_CACHE_MB, default 2048; 0 disables) and off under ASan, where
// reuse would hide use-after-free.
#include "lmlab/core/storage.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

#include "lmlab/core/error.h"

namespace lmlab {

namespace {

constexpr size_t kCacheMin = 64 << 10;  // smaller blocks are cheap in malloc
constexpr size_t kHuge = 2 << 20;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

struct BlockCache {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free;
  size_t cached = 0;
  size_t cap = 0;
  BlockCache() {
    const char* e = std::getenv("LMLAB_ALLOC_CACHE_MB");
    cap = kSanitized ? 0 : size_t(e ? std::atoll(e) : 2048) << 20;
  }
  ~BlockCache() { release(); }
  void release() {
    std::lock_guard<std::mutex> lk(mu);
    for (auto& [sz, v] : free)
      for (void* p : v) std::free(p);
    free.clear();
    cached = 0;
  }
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache();  // never destroyed: storages may outlive static teardown
  return *c;
}

// Cached blocks come in size classes: eight per power of two (at most 12.5% over the request), so
// buffers whose size drifts from step to step (an MoE expert's share of the tokens) still find a
// freed block instead of faulting in fresh zeroed pages every time.
size_t round_size(size_t n) {
  if (n < kCacheMin) return (n + 63) / 64 * 64;
  size_t p = size_t(1) << (63 - __builtin_clzll(n));  // largest power of two <= n
  size_t step = std::max<size_t>(p / 8, 4096);
  return (n + step - 1) / step * step;
}

void* raw_alloc(size_t sz) {
  void* p = std::aligned_alloc(sz >= kHuge ? kHuge : 64, sz >= kHuge ? (sz + kHuge - 1) / kHuge * kHuge : sz);
  if (!p) throw std::bad_alloc();
  if (sz >= kHuge) madvise(p, sz, MADV_HUGEPAGE);
  return p;
}

}  // namespace

void release_cached_memory() { cache().release(); }

size_t cached_memory_bytes() {
  std::lock_guard<std::mutex> lk(cache().mu);
  return cache().cached;
}

Storage::Storage(size_t nbytes, Device dev) : nbytes_(nbytes), owned_(true), device_(dev) {
  LMLAB_CHECK(dev == Device::CPU, Error, "[storage] device ", device_name(dev), " is not available in this build");
  size_t sz = round_size(nbytes == 0 ? 64 : nbytes);
  if (sz >= kCacheMin) {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    auto it = c.free.find(sz);
    if (it != c.free.end() && !it->second.empty()) {
      data_ = it->second.back();
      it->second.pop_back();
      c.cached -= sz;
      return;
    }
  }
  data_ = raw_alloc(sz);
}

Storage::Storage(void* data, size_t nbytes, std::shared_ptr<void> owner, Device dev)
    : data_(data), nbytes_(nbytes), owner_(std::move(owner)), owned_(false), device_(dev) {}

Storage::~Storage() {
  if (!owned_) return;
  size_t sz = round_size(nbytes_ == 0 ? 64 : nbytes_);
  if (sz >= kCacheMin) {
    BlockCache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.cached + sz <= c.cap) {
      c.free[sz].push_back(data_);
      c.cached += sz;
      return;
    }
  }
  std::free(data_);
}

}  // namespace lmlab
