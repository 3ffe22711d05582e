// Indexing ops: gather, scatter_add and index_add (out-of-place), index_select, one_hot, with
// torch.gather / torch.scatter_add / torch.index_add / torch.index_select / F.one_hot semantics. Every
// index is validated here, before any kernel runs; fast kernels live in ops/cpu/index.cpp. Backward
// (vjp with kernels): gather <-> scatter_add and index_select <-> index_add are adjoint pairs.
#include "lmlab/ops/index.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "lmlab/ops/cpu/index_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

// ---- validation helpers ----
// Element at element offset `off` (from the tensor's first element) of an i32/i64 tensor.
int64_t load_index(const Tensor& t, int64_t off) {
  return t.dtype() == DType::I64 ? static_cast<const int64_t*>(t.raw_data())[off]
                                 : int64_t(static_cast<const int32_t*>(t.raw_data())[off]);
}

// Contiguous copy of `index` after checking every value lies in [0, bound). A parallel pass only
// raises a flag (nothing may throw inside OpenMP); the serial pass that names the first offender
// runs only when the flag is up.
Tensor checked_index(const Tensor& index, int64_t bound, const char* op, int64_t d) {
  Tensor ic = contig(index);
  auto check = [&](const auto* p) {
    std::atomic<bool> bad{false};
    parallel_for(0, ic.numel(), 1 << 16, [&](int64_t lo, int64_t hi) {
      bool b = false;
      for (int64_t i = lo; i < hi; ++i) b |= p[i] < 0 || int64_t(p[i]) >= bound;
      if (b) bad = true;
    });
    if (!bad) return;
    for (int64_t i = 0; i < ic.numel(); ++i)
      LMLAB_CHECK(p[i] >= 0 && int64_t(p[i]) < bound, IndexError, "[", op, "] index ", int64_t(p[i]),
                  " out of range for dim ", d, " of size ", bound);
  };
  if (ic.dtype() == DType::I64) check(ic.data<int64_t>());
  else check(ic.data<int32_t>());
  return ic;
}

cpu::IndexPtr iptr(const Tensor& ic) { return {ic.raw_data(), ic.dtype() == DType::I64}; }

// [O, N, I] split of `shape` around d.
void split3(const Shape& s, int64_t d, int64_t& O, int64_t& N, int64_t& I) {
  O = 1;
  I = 1;
  for (int64_t a = 0; a < d; ++a) O *= s[size_t(a)];
  for (int64_t a = d + 1; a < int64_t(s.size()); ++a) I *= s[size_t(a)];
  N = s[size_t(d)];
}

// Coordinates of logical element i of `s`.
void unravel(int64_t i, const Shape& s, std::vector<int64_t>& c) {
  c.resize(s.size());
  for (int64_t a = int64_t(s.size()) - 1; a >= 0; --a) {
    c[size_t(a)] = i % s[size_t(a)];
    i /= s[size_t(a)];
  }
}
int64_t dot(const std::vector<int64_t>& c, const Strides& st) {
  int64_t off = 0;
  for (size_t a = 0; a < c.size(); ++a) off += c[a] * st[a];
  return off;
}

// ---- gather ----
// Reference: walk the index by logical position; the x coordinate along d is the index value.
void gather_ref(const Tensor& x, int64_t d, const Tensor& index, const Tensor& out) {
  size_t es = dtype_size(x.dtype());
  const uint8_t* xp = static_cast<const uint8_t*>(x.raw_data());
  uint8_t* op = static_cast<uint8_t*>(out.raw_data());
  std::vector<int64_t> c;
  for (int64_t p = 0; p < index.numel(); ++p) {
    unravel(p, index.shape(), c);
    int64_t v = load_index(index, dot(c, index.strides()));
    c[size_t(d)] = v;
    std::memcpy(op + size_t(p) * es, xp + size_t(dot(c, x.strides())) * es, es);
  }
}

// out [index.shape] = x gathered along d; `ic` validated and contiguous.
Tensor gather_raw(const Tensor& x, int64_t d, const Tensor& ic) {
  Tensor out = Tensor::empty(ic.shape(), x.dtype());
  if (reference_mode()) {
    gather_ref(x, d, ic, out);
  } else {
    int64_t O, N, I;
    split3(ic.shape(), d, O, N, I);
    cpu::gather_forward(x.raw_data(), cpu::make_addr(ic.shape(), x.strides(), d), iptr(ic), out.raw_data(), O, N,
                        I, dtype_size(x.dtype()));
  }
  return out;
}

// ---- scatter_add ----
// Reference: double accumulators over out (its current values plus every src element routed to it).
void scatter_ref(const Tensor& out, int64_t d, const Tensor& index, const Tensor& src) {
  LMLAB_DISPATCH_FLOAT(out.dtype(), "scatter_add", [&] {
    scalar_t* op = out.data<scalar_t>();
    const scalar_t* sp = static_cast<const scalar_t*>(src.raw_data());
    std::vector<double> acc(op, op + out.numel());
    std::vector<int64_t> c;
    for (int64_t p = 0; p < index.numel(); ++p) {
      unravel(p, index.shape(), c);
      double v = sp[dot(c, src.strides())];
      c[size_t(d)] = load_index(index, dot(c, index.strides()));
      acc[size_t(dot(c, out.strides()))] += v;
    }
    for (int64_t i = 0; i < out.numel(); ++i) op[i] = scalar_t(acc[size_t(i)]);
  });
}

// out (fresh, contiguous, x-shaped) += src routed by `ic` along d. Also gather's backward, which
// can meet a bf16/f16 gradient: the dtype check keeps it out of the f32/f64 kernel.
void scatter_add_into(const Tensor& out, int64_t d, const Tensor& ic, const Tensor& src) {
  check_float(out, "scatter_add", "x");
  if (reference_mode()) {
    scatter_ref(out, d, ic, src);
    return;
  }
  int64_t O, N, I;
  split3(ic.shape(), d, O, N, I);
  cpu::scatter_add_forward(out.dtype(), out.raw_data(), cpu::make_addr(ic.shape(), out.strides(), d), iptr(ic),
                           src.raw_data(), cpu::make_addr(ic.shape(), src.strides(), d), O, N, I);
}

// Shared shape checks for gather/scatter_add: ranks equal, index no larger than x off `d`.
int64_t check_gather_shapes(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  LMLAB_CHECK(x.dim() > 0, ShapeError, "[", op, "] x must have at least one dim, got a zero-dimensional tensor");
  LMLAB_CHECK(index.dim() == x.dim(), ShapeError, "[", op, "] index ", shape_str(index.shape()),
              " must have the same rank as x ", shape_str(x.shape()));
  int64_t d = wrap_dim(dim, x.dim(), op);
  for (int64_t a = 0; a < x.dim(); ++a)
    LMLAB_CHECK(a == d || index.size(a) <= x.size(a), ShapeError, "[", op, "] index ", shape_str(index.shape()),
                " is larger than x ", shape_str(x.shape()), " in dim ", a, " (only dim ", d, " may be larger)");
  return d;
}

// ---- index_select ----
void index_select_ref(const Tensor& x, int64_t d, const Tensor& index, const Tensor& out) {
  size_t es = dtype_size(x.dtype());
  const uint8_t* xp = static_cast<const uint8_t*>(x.raw_data());
  uint8_t* op = static_cast<uint8_t*>(out.raw_data());
  int64_t istride = index.dim() ? index.stride(0) : 0;
  std::vector<int64_t> c;
  for (int64_t p = 0; p < out.numel(); ++p) {
    unravel(p, out.shape(), c);
    c[size_t(d)] = load_index(index, c[size_t(d)] * istride);
    std::memcpy(op + size_t(p) * es, xp + size_t(dot(c, x.strides())) * es, es);
  }
}

// out (fresh, contiguous) += src's slab k placed at slab idx[k] along d: index_add's forward and
// index_select's backward. The reference accumulates in double from out's current values.
void index_add_into(const Tensor& out, int64_t d, const Tensor& ic, const Tensor& src, const char* op,
                    const char* arg) {
  check_float(src, op, arg);  // bf16/f16 gradients have no kernel here
  int64_t O, n, I;
  split3(out.shape(), d, O, n, I);
  int64_t K = ic.numel();
  if (reference_mode()) {
    LMLAB_DISPATCH_FLOAT(src.dtype(), op, [&] {
      const scalar_t* sp = static_cast<const scalar_t*>(src.raw_data());
      scalar_t* o = out.data<scalar_t>();
      std::vector<double> acc(o, o + out.numel());
      std::vector<int64_t> c;
      for (int64_t p = 0; p < src.numel(); ++p) {
        unravel(p, src.shape(), c);
        double v = sp[dot(c, src.strides())];
        c[size_t(d)] = load_index(ic, c[size_t(d)]);
        acc[size_t(dot(c, out.strides()))] += v;
      }
      for (int64_t i = 0; i < out.numel(); ++i) o[i] = scalar_t(acc[size_t(i)]);
    });
  } else {
    Tensor sc = contig(src);
    cpu::index_add(src.dtype(), out.raw_data(), n, iptr(ic), K, sc.raw_data(), O, I);
  }
}

// gx [x shape] = sum over k of g's slab k placed at slab idx[k] along d.
Tensor index_select_backward(const Tensor& g, int64_t d, const Tensor& ic, const Shape& xs) {
  Tensor gx = Tensor::zeros(xs, g.dtype());
  index_add_into(gx, d, ic, g, "index_select", "grad");
  return gx;
}

// out [O, K, I] = x's slabs idx[k] along d (x any layout; copied contiguous for the fast kernel).
Tensor index_select_raw(const Tensor& x, int64_t d, const Tensor& ic) {
  Shape os = x.shape();
  os[size_t(d)] = ic.numel();
  Tensor out = Tensor::empty(os, x.dtype());
  if (reference_mode()) {
    index_select_ref(x, d, ic, out);
  } else {
    Tensor xc = contig(x);
    int64_t O, n, I;
    split3(x.shape(), d, O, n, I);
    cpu::index_select_forward(xc.raw_data(), n, iptr(ic), ic.numel(), out.raw_data(), O, I, dtype_size(x.dtype()));
  }
  return out;
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "gather", "x");
  check_index_dtype(index, "gather", "index");
  int64_t d = check_gather_shapes(x, dim, index, "gather");
  Tensor ic = checked_index(index, x.size(d), "gather", d);
  Tensor out = gather_raw(x, d, ic);
  return record(out, "gather", {x}, {ic}, [d, xs = x.shape()](const Tensor& g, const std::vector<Tensor>& s) {
    Tensor gx = Tensor::zeros(xs, g.dtype());
    scatter_add_into(gx, d, s[0], g);
    return std::vector<Tensor>{gx};
  });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_float(x, "scatter_add", "x");
  check_float(src, "scatter_add", "src");
  check_same_dtype(x, src, "scatter_add");
  check_index_dtype(index, "scatter_add", "index");
  int64_t d = check_gather_shapes(x, dim, index, "scatter_add");
  LMLAB_CHECK(src.dim() == x.dim(), ShapeError, "[scatter_add] src ", shape_str(src.shape()),
              " must have the same rank as x ", shape_str(x.shape()));
  for (int64_t a = 0; a < x.dim(); ++a)
    LMLAB_CHECK(index.size(a) <= src.size(a), ShapeError, "[scatter_add] index ", shape_str(index.shape()),
                " is larger than src ", shape_str(src.shape()), " in dim ", a);
  Tensor ic = checked_index(index, x.size(d), "scatter_add", d);
  // Out-of-place: always a fresh buffer, even when x is already contiguous.
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  copy_into(out, x);
  scatter_add_into(out, d, ic, src);
  Shape ss = src.shape();
  return record(out, "scatter_add", {x, src}, {ic}, [d, ss](const Tensor& g, const std::vector<Tensor>& s) {
    // d/dsrc: gather(g, d, index) on the index-shaped region of src, zero elsewhere (src may be larger).
    Tensor gi = gather_raw(g, d, s[0]);
    Tensor gs = gi;
    if (gi.shape() != ss) {
      gs = Tensor::zeros(ss, g.dtype());
      copy_into(gs.as_strided(gi.shape(), gs.strides(), 0), gi);
    }
    return std::vector<Tensor>{g, gs};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "index_select", "x");
  check_index_dtype(index, "index_select", "index");
  LMLAB_CHECK(x.dim() > 0, ShapeError, "[index_select] x must have at least one dim, got a zero-dimensional tensor");
  LMLAB_CHECK(index.dim() <= 1, ShapeError, "[index_select] index must be 1-D, got ", shape_str(index.shape()));
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  Tensor ic = checked_index(index, x.size(d), "index_select", d);
  Tensor out = index_select_raw(x, d, ic);
  return record(out, "index_select", {x}, {ic}, [d, xs = x.shape()](const Tensor& g, const std::vector<Tensor>& s) {
    return std::vector<Tensor>{index_select_backward(g, d, s[0], xs)};
  });
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_float(x, "index_add", "x");
  check_float(src, "index_add", "src");
  check_same_dtype(x, src, "index_add");
  check_index_dtype(index, "index_add", "index");
  LMLAB_CHECK(x.dim() > 0, ShapeError, "[index_add] x must have at least one dim, got a zero-dimensional tensor");
  LMLAB_CHECK(index.dim() <= 1, ShapeError, "[index_add] index must be 1-D, got ", shape_str(index.shape()));
  int64_t d = wrap_dim(dim, x.dim(), "index_add");
  Shape want = x.shape();
  want[size_t(d)] = index.numel();
  LMLAB_CHECK(src.shape() == want, ShapeError, "[index_add] src must have shape ", shape_str(want), " (x ",
              shape_str(x.shape()), " with ", index.numel(), " index entries along dim ", d, "), got ",
              shape_str(src.shape()));
  Tensor ic = checked_index(index, x.size(d), "index_add", d);
  Tensor out = Tensor::empty(x.shape(), x.dtype());  // out-of-place: always a fresh buffer
  copy_into(out, x);
  index_add_into(out, d, ic, src, "index_add", "src");
  return record(out, "index_add", {x, src}, {ic}, [d](const Tensor& g, const std::vector<Tensor>& s) {
    return std::vector<Tensor>{g, index_select_raw(g, d, s[0])};
  });
}

Tensor one_hot(const Tensor& index, int64_t num_classes, DType dtype) {
  check_index_dtype(index, "one_hot", "index");
  Tensor ic = contig(index);
  int64_t R = ic.numel();
  auto check = [&](const auto* p) {
    int64_t mx = -1;
    for (int64_t i = 0; i < R; ++i) {
      LMLAB_CHECK(p[i] >= 0, IndexError, "[one_hot] class index ", int64_t(p[i]), " is negative");
      mx = std::max<int64_t>(mx, int64_t(p[i]));
    }
    return mx;
  };
  int64_t mx = ic.dtype() == DType::I64 ? check(ic.data<int64_t>()) : check(ic.data<int32_t>());
  int64_t C = num_classes;
  if (C == -1) {
    LMLAB_CHECK(R > 0, ValueError, "[one_hot] cannot infer num_classes (-1) from an empty index tensor");
    C = mx + 1;
  }
  LMLAB_CHECK(C >= 0, ValueError, "[one_hot] num_classes must be non-negative or -1, got ", num_classes);
  LMLAB_CHECK(mx < C, IndexError, "[one_hot] class index ", mx, " out of range for ", C, " classes");
  Shape os = index.shape();
  os.push_back(C);
  Tensor out = Tensor::empty(os, dtype);
  Tensor one = Tensor::ones({1}, dtype);  // the bytes of 1 in `dtype`
  size_t es = dtype_size(dtype);
  if (reference_mode()) {
    uint8_t* op = static_cast<uint8_t*>(out.raw_data());
    for (int64_t r = 0; r < R; ++r) {
      int64_t v = load_index(index, offset_of(r, index.shape(), index.strides()));
      for (int64_t k = 0; k < C; ++k) std::memset(op + size_t(r * C + k) * es, 0, es);
      std::memcpy(op + size_t(r * C + v) * es, one.raw_data(), es);
    }
  } else {
    cpu::one_hot_forward(iptr(ic), R, C, out.raw_data(), es, one.raw_data());
  }
  return out;
}

}  // namespace lmlab
