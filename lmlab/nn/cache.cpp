// KV, MLA-latent and recurrent cache storage, and CacheSet bookkeeping.
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

namespace {
// Grows `buf` [B, 1, capacity, W] by doubling (copying the first `len` rows) to hold len + T rows.
void reserve_rows(Tensor& buf, int64_t len, int64_t T, int64_t B, int64_t W, DType dtype, const char* who) {
  if (buf.defined() && len + T <= buf.size(2) && buf.size(0) == B) return;
  LMLAB_CHECK(!buf.defined() || buf.size(0) == B || len == 0, ShapeError, "[", who, "] batch changed from ",
              buf.defined() ? buf.size(0) : 0, " to ", B, " with ", len, " cached positions");
  int64_t cap = std::max<int64_t>(64, buf.defined() ? buf.size(2) : 0);
  while (cap < len + T) cap *= 2;
  Tensor nb = Tensor::empty({B, 1, cap, W}, dtype);
  if (buf.defined() && len > 0) copy_into(nb.narrow(2, 0, len), buf.narrow(2, 0, len));
  buf = nb;
}
Tensor deep_copy(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor c = Tensor::empty(t.shape(), t.dtype());
  copy_into(c, t);
  return c;
}
}  // namespace

size_t MLACache::bytes() const {
  if (!latent.defined()) return 0;
  return size_t(latent.size(0) * latent.size(3)) * dtype_size(latent.dtype()) * size_t(len);
}

std::shared_ptr<LayerCache> MLACache::clone() const {
  auto c = std::make_shared<MLACache>();
  if (latent.defined()) {
    c->latent = Tensor::empty(latent.shape(), latent.dtype());
    if (len > 0) copy_into(c->latent.narrow(2, 0, len), latent.narrow(2, 0, len));
  }
  c->len = len;
  return c;
}

void MLACache::truncate(int64_t n) {
  LMLAB_CHECK(n >= 0 && n <= len, IndexError, "[mla_cache] truncate to ", n, " outside [0, ", len, "]");
  len = n;
}

Tensor MLACache::append(const Tensor& rows) {
  NoGrad ng;
  LMLAB_CHECK(rows.dim() == 4 && rows.size(1) == 1, ShapeError, "[mla_cache] rows must be [B, 1, T, W], got ",
              shape_str(rows.shape()));
  LMLAB_CHECK(!latent.defined() || len == 0 || latent.size(3) == rows.size(3), ShapeError,
              "[mla_cache] row width changed from ", latent.defined() ? latent.size(3) : 0, " to ", rows.size(3));
  int64_t T = rows.size(2);
  reserve_rows(latent, len, T, rows.size(0), rows.size(3), rows.dtype(), "mla_cache");
  copy_into(latent.narrow(2, len, T), rows);
  len += T;
  return latent.narrow(2, 0, len);
}

size_t RecurrentCache::bytes() const {
  size_t b = 0;
  for (const Tensor* t : {&state, &conv_q, &conv_k, &conv_v})
    if (t->defined()) b += t->nbytes();
  return b;
}

std::shared_ptr<LayerCache> RecurrentCache::clone() const {
  auto c = std::make_shared<RecurrentCache>();
  c->kind = kind;
  c->state = deep_copy(state);
  c->conv_q = deep_copy(conv_q);
  c->conv_k = deep_copy(conv_k);
  c->conv_v = deep_copy(conv_v);
  c->len = len;
  return c;
}

void RecurrentCache::truncate(int64_t n) {
  if (n == len) return;
  LMLAB_CHECK(n == 0, ValueError, "[", kind, "_cache] cannot truncate a ", kind, " layer's recurrent state from ", len,
              " to ", n, " positions: the state cannot be rewound (fork the cache before decoding instead)");
  state = conv_q = conv_k = conv_v = Tensor();
  len = 0;
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
