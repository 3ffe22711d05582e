// Fast CPU kernels for the indexing ops (ops/index.cpp): gather, scatter_add, index_select and its
// backward (index_add), one_hot. Indices arrive validated and contiguous (i32 or i64); kernels
// never check them again and never throw (they run inside OpenMP regions).
#pragma once
#include <cstdint>
#include <vector>

#include "lmlab/core/dtype.h"
#include "lmlab/core/shape.h"

namespace lmlab::cpu {

// A contiguous i32 or i64 index buffer.
struct IndexPtr {
  const void* p;
  bool i64;
};

// How a strided operand is addressed while walking an index-shaped iteration space viewed as
// [O, N, I] around `dim` (O = dims before, N = dim, I = dims after): element (o, j, i) sits at
// base(o) + j * dim_stride + inner[i]. When the leading dims collapse into one stride (the usual
// case) base(o) = o * outer_step and no O-sized table is built; unit_inner marks inner[i] == i.
struct Addr {
  std::vector<int64_t> outer, inner;
  int64_t outer_step = 0;
  int64_t dim_stride = 0;
  bool unit_inner = false;
  int64_t base(int64_t o) const { return outer.empty() ? o * outer_step : outer[size_t(o)]; }
};
// `shape` is the iteration (index) shape, `strides` the operand's strides (element units).
Addr make_addr(const Shape& shape, const Strides& strides, int64_t dim);

// out [O, N, I] contiguous: out(o, j, i) = x[xa.outer[o] + idx(o, j, i) * xa.dim_stride + xa.inner[i]].
// Elements are moved as `es`-byte words, so any dtype works.
void gather_forward(const void* x, const Addr& xa, IndexPtr idx, void* out, int64_t O, int64_t N, int64_t I,
                    size_t es);
// out[oa.outer[o] + idx(o, j, i) * oa.dim_stride + oa.inner[i]] += src(o, j, i) (addressed by sa); f32/f64.
void scatter_add_forward(DType dt, void* out, const Addr& oa, IndexPtr idx, const void* src, const Addr& sa,
                         int64_t O, int64_t N, int64_t I);
// x [O, n, I] contiguous -> out [O, K, I]: out[o, k, :] = x[o, idx[k], :] (one memcpy per row).
void index_select_forward(const void* x, int64_t n, IndexPtr idx, int64_t K, void* out, int64_t O, int64_t I,
                          size_t es);
// gx [O, n, I] += g [O, K, I] routed by idx: gx[o, idx[k], :] += g[o, k, :]; f32/f64.
void index_add(DType dt, void* gx, int64_t n, IndexPtr idx, int64_t K, const void* g, int64_t O, int64_t I);
// out [R, C] (es-byte elements): zeros with `one` (es bytes) at column idx[r] of row r.
void one_hot_forward(IndexPtr idx, int64_t R, int64_t C, void* out, size_t es, const void* one);

}  // namespace lmlab::cpu
