// Internal helpers shared by op files: dtype dispatch, argument checks, strided iteration.
#pragma once
#include <cmath>
#include <vector>

#include "lmlab/core/node.h"
#include "lmlab/core/parallel.h"
#include "lmlab/core/tensor.h"
#include "lmlab/ops/mode.h"

namespace lmlab::detail {

// Runs `body` with `scalar_t` bound to float or double; other dtypes raise DTypeError naming `op`.
#define LMLAB_DISPATCH_FLOAT(dtype, op, ...)                                                       \
  [&] {                                                                                            \
    switch (dtype) {                                                                               \
      case ::lmlab::DType::F32: { using scalar_t = float; return __VA_ARGS__(); }                 \
      case ::lmlab::DType::F64: { using scalar_t = double; return __VA_ARGS__(); }                \
      default:                                                                                     \
        throw ::lmlab::DTypeError(::lmlab::str_cat("[", op, "] unsupported dtype ",                \
                                                   ::lmlab::dtype_name(dtype), ": expected f32 or f64")); \
    }                                                                                              \
  }()

inline void check_defined(const Tensor& t, const char* op, const char* arg) {
  LMLAB_CHECK(t.defined(), ValueError, "[", op, "] argument '", arg, "' is an undefined tensor");
}
inline void check_float(const Tensor& t, const char* op, const char* arg) {
  check_defined(t, op, arg);
  LMLAB_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::F64, DTypeError, "[", op, "] argument '", arg,
              "' has unsupported dtype ", dtype_name(t.dtype()), ": expected f32 or f64");
}
inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  LMLAB_CHECK(a.dtype() == b.dtype(), DTypeError, "[", op, "] dtype mismatch: ", dtype_name(a.dtype()), " ",
              shape_str(a.shape()), " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
}
inline void check_index_dtype(const Tensor& t, const char* op, const char* arg) {
  check_defined(t, op, arg);
  LMLAB_CHECK(t.dtype() == DType::I64 || t.dtype() == DType::I32, DTypeError, "[", op, "] argument '", arg,
              "' must be an index tensor (i64 or i32), got ", dtype_name(t.dtype()));
}

// Reads index tensor element i (contiguous) as int64.
inline int64_t index_at(const Tensor& idx, int64_t i) {
  return idx.dtype() == DType::I64 ? idx.data<int64_t>()[i] : int64_t(idx.data<int32_t>()[i]);
}

// Contiguous copy without autograd (kernels use it on their inputs).
inline Tensor contig(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = Tensor::empty(t.shape(), t.dtype());
  copy_into(c, t);
  return c;
}

// Offsets of logical element i in a tensor of shape `shape` with `strides`.
inline int64_t offset_of(int64_t i, const Shape& shape, const Strides& strides) {
  int64_t off = 0;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    int64_t k = i % shape[size_t(d)];
    i /= shape[size_t(d)];
    off += k * strides[size_t(d)];
  }
  return off;
}

// Iterates over an output of `shape` in rows of the last dim, giving each operand's base offset for
// the row. `fn(row_offsets, inner, inner_strides)`; operands described by broadcast strides.
template <size_t N, class F>
void for_each_row(const Shape& shape, const std::array<Strides, N>& st, F&& fn, bool parallel = true) {
  int64_t nd = int64_t(shape.size());
  int64_t n = numel_of(shape);
  if (n == 0) return;
  int64_t inner = nd ? shape[size_t(nd - 1)] : 1;
  std::array<int64_t, N> in_st{};
  for (size_t k = 0; k < N; ++k) in_st[k] = nd ? st[k][size_t(nd - 1)] : 0;
  int64_t rows = inner ? n / inner : 0;
  auto body = [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      std::array<int64_t, N> off{};
      int64_t rem = r;
      for (int64_t d = nd - 2; d >= 0; --d) {
        int64_t k = rem % shape[size_t(d)];
        rem /= shape[size_t(d)];
        for (size_t j = 0; j < N; ++j) off[j] += k * st[j][size_t(d)];
      }
      fn(off, inner, in_st);
    }
  };
  if (parallel) parallel_for(0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(inner, 1)), body);
  else body(0, rows);
}

}  // namespace lmlab::detail
