// Fast indexing kernels (declared in index_kernels.h): OpenMP over rows for reads (gather,
// index_select, one_hot) and over (outer row, inner block) tasks for accumulating writes
// (scatter_add, index_add), a split in which two tasks can never hit the same output element.
#include <algorithm>
#include <cstring>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/index_kernels.h"

namespace lmlab::cpu {

namespace {

// Calls f(typed index pointer).
template <class F>
void with_index(IndexPtr idx, F&& f) {
  if (idx.i64) f(static_cast<const int64_t*>(idx.p));
  else f(static_cast<const int32_t*>(idx.p));
}

// Copies `es`-byte elements as same-sized unsigned words (no arithmetic, so any dtype works).
template <class F>
void with_word(size_t es, F&& f) {
  switch (es) {
    case 1: f(uint8_t{}); break;
    case 2: f(uint16_t{}); break;
    case 4: f(uint32_t{}); break;
    default: f(uint64_t{}); break;
  }
}

template <class F>
void with_float(DType dt, F&& f) {
  if (dt == DType::F64) f(double{});
  else f(float{});
}

// Tasks for accumulating kernels: O outer rows times blocks of the inner range. Writes differ only
// along the indexed dim, so tasks with distinct (o, inner block) are race-free. When O alone
// offers enough parallelism each task takes a whole inner range (longest contiguous loops).
struct Tiles {
  int64_t B, nb;
};
Tiles tiles(int64_t O, int64_t I) {
  int64_t nt = num_threads();
  int64_t B = O >= 4 * nt ? I : std::max<int64_t>(64, (I + 4 * nt - 1) / (4 * nt));
  B = std::max<int64_t>(1, std::min(B, I));
  return {B, (I + B - 1) / B};
}

}  // namespace

Addr make_addr(const Shape& shape, const Strides& strides, int64_t dim) {
  Addr a;
  int64_t nd = int64_t(shape.size());
  int64_t O = 1, I = 1;
  for (int64_t d = 0; d < dim; ++d) O *= shape[size_t(d)];
  for (int64_t d = dim + 1; d < nd; ++d) I *= shape[size_t(d)];
  bool affine = true;  // leading dims collapse: offset(o) = o * strides[dim - 1]
  for (int64_t d = 0; d + 1 < dim; ++d)
    affine = affine && (shape[size_t(d)] == 1 || strides[size_t(d)] == strides[size_t(d + 1)] * shape[size_t(d + 1)]);
  if (affine) a.outer_step = dim > 0 ? strides[size_t(dim - 1)] : 0;
  else a.outer.resize(size_t(O));
  a.inner.resize(size_t(I));
  for (int64_t o = 0; o < int64_t(a.outer.size()); ++o) {
    int64_t rem = o, off = 0;
    for (int64_t d = dim - 1; d >= 0; --d) {
      off += (rem % shape[size_t(d)]) * strides[size_t(d)];
      rem /= shape[size_t(d)];
    }
    a.outer[size_t(o)] = off;
  }
  a.unit_inner = true;
  for (int64_t i = 0; i < I; ++i) {
    int64_t rem = i, off = 0;
    for (int64_t d = nd - 1; d > dim; --d) {
      off += (rem % shape[size_t(d)]) * strides[size_t(d)];
      rem /= shape[size_t(d)];
    }
    a.inner[size_t(i)] = off;
    a.unit_inner = a.unit_inner && off == i;
  }
  a.dim_stride = strides[size_t(dim)];
  return a;
}

void gather_forward(const void* x, const Addr& xa, IndexPtr idx, void* out, int64_t O, int64_t N, int64_t I,
                    size_t es) {
  with_word(es, [&](auto w) {
    using E = decltype(w);
    with_index(idx, [&](auto* ix) {
      const E* xp = static_cast<const E*>(x);
      E* op = static_cast<E*>(out);
      int64_t sd = xa.dim_stride;
      parallel_for(0, O * N, std::max<int64_t>(1, 16384 / std::max<int64_t>(I, 1)), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const E* xb = xp + xa.base(r / N);
          const auto* ir = ix + r * I;
          E* orow = op + r * I;
          if (xa.unit_inner) {
            for (int64_t i = 0; i < I; ++i) orow[i] = xb[int64_t(ir[i]) * sd + i];
          } else {
            for (int64_t i = 0; i < I; ++i) orow[i] = xb[int64_t(ir[i]) * sd + xa.inner[size_t(i)]];
          }
        }
      });
    });
  });
}

void scatter_add_forward(DType dt, void* out, const Addr& oa, IndexPtr idx, const void* src, const Addr& sa,
                         int64_t O, int64_t N, int64_t I) {
  if (O * N * I == 0) return;
  with_float(dt, [&](auto zero) {
    using T = decltype(zero);
    with_index(idx, [&](auto* ix) {
      T* op = static_cast<T*>(out);
      const T* sp = static_cast<const T*>(src);
      Tiles t = tiles(O, I);
      int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(N * t.B, 1));
      parallel_for(0, O * t.nb, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t task = lo; task < hi; ++task) {
          int64_t o = task / t.nb, i0 = (task % t.nb) * t.B, i1 = std::min(I, i0 + t.B);
          T* ob = op + oa.base(o);
          for (int64_t j = 0; j < N; ++j) {
            const auto* ir = ix + (o * N + j) * I;
            const T* sr = sp + sa.base(o) + j * sa.dim_stride;
            if (oa.unit_inner && sa.unit_inner) {
              for (int64_t i = i0; i < i1; ++i) ob[int64_t(ir[i]) * oa.dim_stride + i] += sr[i];
            } else {
              for (int64_t i = i0; i < i1; ++i)
                ob[int64_t(ir[i]) * oa.dim_stride + oa.inner[size_t(i)]] += sr[sa.inner[size_t(i)]];
            }
          }
        }
      });
    });
  });
}

void index_select_forward(const void* x, int64_t n, IndexPtr idx, int64_t K, void* out, int64_t O, int64_t I,
                          size_t es) {
  size_t row = size_t(I) * es;
  if (row == 0) return;
  with_index(idx, [&](auto* ix) {
    const uint8_t* xp = static_cast<const uint8_t*>(x);
    uint8_t* op = static_cast<uint8_t*>(out);
    parallel_for(0, O * K, std::max<int64_t>(1, 65536 / int64_t(row)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        int64_t o = r / K, k = r % K;
        std::memcpy(op + size_t(r) * row, xp + size_t(o * n + int64_t(ix[k])) * row, row);
      }
    });
  });
}

void index_add(DType dt, void* gx, int64_t n, IndexPtr idx, int64_t K, const void* g, int64_t O, int64_t I) {
  if (O * K * I == 0) return;
  with_float(dt, [&](auto zero) {
    using T = decltype(zero);
    with_index(idx, [&](auto* ix) {
      T* gp = static_cast<T*>(gx);
      const T* sp = static_cast<const T*>(g);
      Tiles t = tiles(O, I);
      int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(K * t.B, 1));
      parallel_for(0, O * t.nb, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t task = lo; task < hi; ++task) {
          int64_t o = task / t.nb, i0 = (task % t.nb) * t.B, i1 = std::min(I, i0 + t.B);
          for (int64_t k = 0; k < K; ++k) {
            T* dst = gp + (o * n + int64_t(ix[k])) * I;
            const T* s = sp + (o * K + k) * I;
            for (int64_t i = i0; i < i1; ++i) dst[i] += s[i];
          }
        }
      });
    });
  });
}

void one_hot_forward(IndexPtr idx, int64_t R, int64_t C, void* out, size_t es, const void* one) {
  size_t row = size_t(C) * es;
  if (row == 0) return;
  with_index(idx, [&](auto* ix) {
    uint8_t* op = static_cast<uint8_t*>(out);
    parallel_for(0, R, std::max<int64_t>(1, 65536 / int64_t(row)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        uint8_t* orow = op + size_t(r) * row;
        std::memset(orow, 0, row);
        std::memcpy(orow + size_t(ix[r]) * es, one, es);
      }
    });
  });
}

}  // namespace lmlab::cpu
