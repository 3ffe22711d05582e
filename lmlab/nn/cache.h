// Per-layer inference caches and the set of them a model fills while decoding. Every layer kind
// brings its own cache (KV for attention here; MLA latents and KDA states later). A CacheSet
// forks copy-on-write (forked sets share layer caches until one of them appends) and truncates
// (rolls back to n positions). Bytes per token are measured from the caches themselves.
#pragma once
#include <memory>
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {

struct LayerCache {
  virtual ~LayerCache() = default;
  virtual int64_t length() const = 0;                      // positions cached
  virtual size_t bytes() const = 0;                        // bytes holding cached positions
  virtual std::shared_ptr<LayerCache> clone() const = 0;   // deep copy
  virtual void truncate(int64_t n) = 0;                    // keep the first n positions
};

// Keys and values [B, Hkv, capacity, D], filled up to `len`; capacity grows by doubling.
struct KVCache : LayerCache {
  Tensor k, v;
  int64_t len = 0;
  int64_t length() const override { return len; }
  size_t bytes() const override;
  std::shared_ptr<LayerCache> clone() const override;
  void truncate(int64_t n) override;
  // Appends k_new, v_new [B, Hkv, T, D]; returns views of all cached keys/values [B, Hkv, len, D].
  std::pair<Tensor, Tensor> append(const Tensor& k_new, const Tensor& v_new);
};

class CacheSet {
 public:
  explicit CacheSet(int64_t n_layers = 0) : layers_(size_t(n_layers)) {}
  int64_t size() const { return int64_t(layers_.size()); }
  // The layer's cache, created by `make` on first use; cloned first when shared with a fork.
  template <class C>
  C& layer(int64_t i) {
    auto& p = layers_.at(size_t(i));
    if (!p) p = std::make_shared<C>();
    else if (p.use_count() > 1) p = p->clone();
    return static_cast<C&>(*p);
  }
  int64_t length() const;  // positions cached (layer 0; all layers agree)
  size_t bytes() const;
  CacheSet fork() const { return *this; }  // shares layer caches copy-on-write
  void truncate(int64_t n);
  void clear() { for (auto& l : layers_) l.reset(); }

 private:
  std::vector<std::shared_ptr<LayerCache>> layers_;
};

}  // namespace lmlab
