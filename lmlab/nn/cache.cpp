// KV cache storage and CacheSet bookkeeping.
#include "lmlab/nn/cache.h"

#include <algorithm>

#include "lmlab/core/node.h"

namespace lmlab {

size_t KVCache::bytes() const {
  if (!k.defined()) return 0;
  size_t per_pos = size_t(k.size(0) * k.size(1) * k.size(3)) * dtype_size(k.dtype()) +
                   size_t(v.size(0) * v.size(1) * v.size(3)) * dtype_size(v.dtype());
  return per_pos * size_t(len);
}

std::shared_ptr<LayerCache> KVCache::clone() const {
  auto c = std::make_shared<KVCache>();
  if (k.defined()) {
    c->k = Tensor::empty(k.shape(), k.dtype());
    c->v = Tensor::empty(v.shape(), v.dtype());
    if (len > 0) {
      copy_into(c->k.narrow(2, 0, len), k.narrow(2, 0, len));
      copy_into(c->v.narrow(2, 0, len), v.narrow(2, 0, len));
    }
  }
  c->len = len;
  return c;
}

void KVCache::truncate(int64_t n) {
  LMLAB_CHECK(n >= 0 && n <= len, IndexError, "[kv_cache] truncate to ", n, " outside [0, ", len, "]");
  len = n;
}

std::pair<Tensor, Tensor> KVCache::append(const Tensor& k_new, const Tensor& v_new) {
  NoGrad ng;
  int64_t B = k_new.size(0), H = k_new.size(1), T = k_new.size(2), D = k_new.size(3), Dv = v_new.size(3);
  if (!k.defined() || len + T > k.size(2) || k.size(0) != B) {
    LMLAB_CHECK(!k.defined() || k.size(0) == B || len == 0, ShapeError, "[kv_cache] batch changed from ",
                k.defined() ? k.size(0) : 0, " to ", B, " with ", len, " cached positions");
    int64_t cap = std::max<int64_t>(64, k.defined() ? k.size(2) : 0);
    while (cap < len + T) cap *= 2;
    Tensor nk = Tensor::empty({B, H, cap, D}, k_new.dtype()), nv = Tensor::empty({B, H, cap, Dv}, v_new.dtype());
    if (k.defined() && len > 0) {
      copy_into(nk.narrow(2, 0, len), k.narrow(2, 0, len));
      copy_into(nv.narrow(2, 0, len), v.narrow(2, 0, len));
    }
    k = nk;
    v = nv;
  }
  copy_into(k.narrow(2, len, T), k_new);
  copy_into(v.narrow(2, len, T), v_new);
  len += T;
  return {k.narrow(2, 0, len), v.narrow(2, 0, len)};
}

int64_t CacheSet::length() const {
  for (const auto& l : layers_)
    if (l) return l->length();
  return 0;
}

size_t CacheSet::bytes() const {
  size_t b = 0;
  for (const auto& l : layers_)
    if (l) b += l->bytes();
  return b;
}

void CacheSet::truncate(int64_t n) {
  for (auto& l : layers_) {
    if (!l) continue;
    if (l.use_count() > 1) l = l->clone();
    l->truncate(n);
  }
}

}  // namespace lmlab
