// Per-layer inference caches and the set of them a model fills while decoding. Every layer kind
// brings its own cache: KVCache (softmax attention: keys and values per position), MLACache
// (multi-head latent attention: one compressed latent + decoupled rope key per position) and
// RecurrentCache (KDA / GDN / DeltaNet / GLA: a fixed-size state, O(1) in the sequence length).
// A CacheSet forks copy-on-write (forked sets share layer caches until one of them appends) and
// truncates (rolls back to n positions; a recurrent state cannot be rewound, see RecurrentCache).
// Bytes are measured from the caches themselves (bytes()), per layer kind.
#pragma once
#include <memory>
#include <string>
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

// MLA (DeepSeek-V2 / Kimi): per position only the normalised latent c_kv (rank R) and the decoupled
// rope key (Dr channels), stored as one row latent [B, 1, capacity, R + Dr], filled up to `len`.
// Bytes per position per batch row: (R + Dr) * dtype size.
struct MLACache : LayerCache {
  Tensor latent;
  int64_t len = 0;
  int64_t length() const override { return len; }
  size_t bytes() const override;
  std::shared_ptr<LayerCache> clone() const override;
  void truncate(int64_t n) override;
  // Appends rows [B, 1, T, R + Dr]; returns a view of all cached rows [B, 1, len, R + Dr].
  Tensor append(const Tensor& rows);
};

// Linear-attention mixers (KDA, GDN, DeltaNet, gated linear attention): the recurrent state
// [B, H, dk, dv] plus the short convolutions' tails (the last K-1 projected inputs of q, k and v,
// [B, K-1, C] each; undefined without convolutions). Size is independent of the sequence length.
// truncate(n) cannot rewind a state: it accepts n == length() (no-op) and n == 0 (reset) and
// throws ValueError naming the layer kind otherwise (fork the set before speculating instead).
struct RecurrentCache : LayerCache {
  std::string kind = "kda";  // the mixer, for messages
  Tensor state;
  Tensor conv_q, conv_k, conv_v;
  int64_t len = 0;
  int64_t length() const override { return len; }
  size_t bytes() const override;
  std::shared_ptr<LayerCache> clone() const override;
  void truncate(int64_t n) override;
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
    auto* c = dynamic_cast<C*>(p.get());
    LMLAB_CHECK(c != nullptr, ValueError, "[cache] layer ", i, " holds a cache of another kind than the layer asks for");
    return *c;
  }
  // The layer's cache, or null when none was created yet (read-only; for measuring bytes per kind).
  const LayerCache* peek(int64_t i) const { return layers_.at(size_t(i)).get(); }
  int64_t length() const;  // positions cached (layer 0; all layers agree)
  size_t bytes() const;
  CacheSet fork() const { return *this; }  // shares layer caches copy-on-write
  void truncate(int64_t n);
  void clear() { for (auto& l : layers_) l.reset(); }

 private:
  std::vector<std::shared_ptr<LayerCache>> layers_;
};

}  // namespace lmlab
