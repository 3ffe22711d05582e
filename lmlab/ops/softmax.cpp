// softmax / log_softmax along one dim: validation, reference kernels, autograd wiring with
// dedicated backward kernels. Fast kernels (ops/cpu/softmax.cpp) see rows [N, R] with the softmax
// dim moved last and made contiguous. References: torch.softmax, torch.log_softmax.
#include "lmlab/ops/softmax.h"

#include "lmlab/ops/cpu/softmax_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

// Every 1-D slice of `t` along dim d: shape and strides of the other dims (for offset_of).
struct Slices {
  Shape outer;
  Strides outer_strides;
  int64_t R, stride;
};
Slices slices_of(const Tensor& t, int64_t d) {
  Slices s{{}, {}, t.size(d), t.stride(d)};
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i == d) continue;
    s.outer.push_back(t.size(i));
    s.outer_strides.push_back(t.stride(i));
  }
  return s;
}

// Reference: each slice walked by stride, max / sums in double, libm exp in double.
template <class T>
void softmax_ref(const Tensor& x, int64_t d, bool log, const Tensor& y) {
  Slices sx = slices_of(x, d), sy = slices_of(y, d);
  const T* xp = static_cast<const T*>(x.raw_data());
  T* yp = y.data<T>();
  int64_t O = numel_of(sx.outer);
  for (int64_t o = 0; o < O; ++o) {
    const T* xr = xp + offset_of(o, sx.outer, sx.outer_strides);
    T* yr = yp + offset_of(o, sy.outer, sy.outer_strides);
    double m = -INFINITY;
    for (int64_t j = 0; j < sx.R; ++j) m = std::max(m, double(xr[j * sx.stride]));
    double s = 0;
    for (int64_t j = 0; j < sx.R; ++j) s += std::exp(double(xr[j * sx.stride]) - m);
    for (int64_t j = 0; j < sx.R; ++j) {
      double v = double(xr[j * sx.stride]) - m;
      yr[j * sy.stride] = T(log ? v - std::log(s) : std::exp(v) / s);
    }
  }
}

template <class T>
void softmax_backward_ref(const Tensor& g, const Tensor& y, int64_t d, bool log, const Tensor& gx) {
  Slices sg = slices_of(g, d), sy = slices_of(y, d), so = slices_of(gx, d);
  const T* gp = static_cast<const T*>(g.raw_data());
  const T* yp = static_cast<const T*>(y.raw_data());
  T* op = gx.data<T>();
  int64_t O = numel_of(sg.outer);
  for (int64_t o = 0; o < O; ++o) {
    const T* gr = gp + offset_of(o, sg.outer, sg.outer_strides);
    const T* yr = yp + offset_of(o, sy.outer, sy.outer_strides);
    T* orow = op + offset_of(o, so.outer, so.outer_strides);
    double acc = 0;
    for (int64_t j = 0; j < sg.R; ++j)
      acc += log ? double(gr[j * sg.stride]) : double(gr[j * sg.stride]) * double(yr[j * sy.stride]);
    for (int64_t j = 0; j < sg.R; ++j) {
      double gv = gr[j * sg.stride], yv = yr[j * sy.stride];
      orow[j * so.stride] = T(log ? gv - std::exp(yv) * acc : yv * (gv - acc));
    }
  }
}

// Permutation moving dim d last (identity when d already is).
std::vector<int64_t> dim_last_perm(int64_t nd, int64_t d) {
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < nd; ++i)
    if (i != d) perm.push_back(i);
  perm.push_back(d);
  return perm;
}

// Contiguous rows [N, R] of t with dim d last; no copy when t already is laid out that way.
Tensor rows_of(const Tensor& t, int64_t d) {
  NoGrad ng;
  return contig(t.detach().permute(dim_last_perm(t.dim(), d)));
}

// Writes rows [N, R] (dim d last) back into a contiguous tensor of `shape`.
Tensor unrows(const Tensor& rows, const Shape& shape, int64_t d) {
  if (d == int64_t(shape.size()) - 1) return rows;
  Tensor out = Tensor::empty(shape, rows.dtype());
  NoGrad ng;
  copy_into(out.permute(dim_last_perm(int64_t(shape.size()), d)), rows);
  return out;
}

Tensor softmax_forward(const Tensor& x, int64_t d, bool log, const char* op) {
  if (reference_mode()) {
    Tensor y = Tensor::empty(x.shape(), x.dtype());
    LMLAB_DISPATCH_FLOAT(x.dtype(), op, [&] { softmax_ref<scalar_t>(x, d, log, y); });
    return y;
  }
  Tensor xr = rows_of(x, d);
  Tensor yr = Tensor::empty(xr.shape(), x.dtype());
  int64_t R = x.size(d), N = R ? x.numel() / R : 0;
  LMLAB_DISPATCH_FLOAT(x.dtype(), op, [&] {
    cpu::softmax_forward<scalar_t>(xr.data<scalar_t>(), yr.data<scalar_t>(), N, R, log);
  });
  return unrows(yr, x.shape(), d);
}

Tensor softmax_backward(const Tensor& g_in, const Tensor& y, int64_t d, bool log, const char* op) {
  Tensor g = g_in.dtype() == y.dtype() ? g_in : g_in.to(y.dtype());
  if (reference_mode()) {
    Tensor gx = Tensor::empty(y.shape(), y.dtype());
    LMLAB_DISPATCH_FLOAT(y.dtype(), op, [&] { softmax_backward_ref<scalar_t>(g, y, d, log, gx); });
    return gx;
  }
  Tensor gr = rows_of(g, d), yr = rows_of(y, d);
  Tensor gxr = Tensor::empty(yr.shape(), y.dtype());
  int64_t R = y.size(d), N = R ? y.numel() / R : 0;
  LMLAB_DISPATCH_FLOAT(y.dtype(), op, [&] {
    cpu::softmax_backward<scalar_t>(gr.data<scalar_t>(), yr.data<scalar_t>(), gxr.data<scalar_t>(), N, R, log);
  });
  return unrows(gxr, y.shape(), d);
}

Tensor softmax_op(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  check_float(x, op, "x");
  int64_t d = wrap_dim(dim, x.dim(), op);
  // A 0-d tensor is one row of one element.
  if (x.dim() == 0) return softmax_op(x.reshape({1}), 0, log).reshape({});
  Tensor y = softmax_forward(x, d, log, op);
  return record(y, op, {x}, {y.detach()}, [d, log, op](const Tensor& g, const std::vector<Tensor>& s) {
    return std::vector<Tensor>{softmax_backward(g, s[0], d, log, op)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, true); }

}  // namespace lmlab
