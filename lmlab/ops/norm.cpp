// RMSNorm and LayerNorm over the last dim: validation, `_ref` kernels (plain loops in double, no
// threads) and autograd wiring to dedicated fused backward kernels (fast ones in ops/cpu/norm.cpp).
// The forward saves x, weight and the per-row rstd (and mean) only, as llm.c's layernorm does.
// References: Zhang & Sennrich 2019 (RMSNorm), HF LlamaRMSNorm, torch.nn.functional.layer_norm.
#include "lmlab/ops/norm.h"

#include <cmath>
#include <vector>

#include "lmlab/ops/cpu/norm_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

// ---- validation: x [..., C], optional weight/bias [C] of x's dtype; returns C ----
int64_t check_norm_args(const char* op, const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_float(x, op, "x");
  LMLAB_CHECK(x.dim() >= 1, ShapeError, "[", op, "] x must be [..., C], got a 0-d tensor");
  int64_t C = x.size(-1);
  LMLAB_CHECK(C > 0, ShapeError, "[", op, "] normalised dim C must be non-empty, got x ", shape_str(x.shape()));
  auto check_param = [&](const Tensor& p, const char* name) {
    if (!p.defined()) return;
    check_float(p, op, name);
    check_same_dtype(x, p, op);
    LMLAB_CHECK(p.shape() == Shape{C}, ShapeError, "[", op, "] ", name, " must be [C] = [", C, "], got ",
                shape_str(p.shape()));
  };
  check_param(weight, "weight");
  check_param(bias, "bias");
  LMLAB_CHECK(std::isfinite(eps) && eps >= 0, ValueError, "[", op, "] eps must be finite and >= 0, got ", eps);
  return C;
}

template <class S>
S* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<S>() : nullptr;
}

// ---- reference kernels: contiguous [N, C] rows, everything in double ----
template <class S>
void rms_norm_forward_ref(const S* x, const S* w, S* y, S* rstd, int64_t N, int64_t C, double eps) {
  for (int64_t n = 0; n < N; ++n) {
    const S* xr = x + n * C;
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += double(xr[c]) * double(xr[c]);
    double r = 1.0 / std::sqrt(ss / double(C) + eps);
    for (int64_t c = 0; c < C; ++c) y[n * C + c] = S(double(xr[c]) * r * (w ? double(w[c]) : 1.0));
    rstd[n] = S(r);
  }
}

template <class S>
void rms_norm_backward_ref(const S* g, const S* x, const S* w, const S* rstd, S* dx, S* dw, int64_t N, int64_t C) {
  std::vector<double> dw_acc(size_t(C), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const S* gr = g + n * C;
    const S* xr = x + n * C;
    double r = rstd[n], dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += double(gr[c]) * (w ? double(w[c]) : 1.0) * double(xr[c]);
    for (int64_t c = 0; c < C; ++c) {
      double gw = double(gr[c]) * (w ? double(w[c]) : 1.0);
      if (dx) dx[n * C + c] = S(r * gw - r * r * r / double(C) * double(xr[c]) * dot);
      dw_acc[size_t(c)] += double(gr[c]) * double(xr[c]) * r;
    }
  }
  if (dw)
    for (int64_t c = 0; c < C; ++c) dw[c] = S(dw_acc[size_t(c)]);
}

template <class S>
void layer_norm_forward_ref(const S* x, const S* w, const S* b, S* y, S* mean, S* rstd, int64_t N, int64_t C,
                            double eps) {
  for (int64_t n = 0; n < N; ++n) {
    const S* xr = x + n * C;
    double mu = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mu += double(xr[c]);
    mu /= double(C);
    for (int64_t c = 0; c < C; ++c) var += (double(xr[c]) - mu) * (double(xr[c]) - mu);
    var /= double(C);
    double r = 1.0 / std::sqrt(var + eps);
    for (int64_t c = 0; c < C; ++c)
      y[n * C + c] = S((double(xr[c]) - mu) * r * (w ? double(w[c]) : 1.0) + (b ? double(b[c]) : 0.0));
    mean[n] = S(mu);
    rstd[n] = S(r);
  }
}

template <class S>
void layer_norm_backward_ref(const S* g, const S* x, const S* w, const S* mean, const S* rstd, S* dx, S* dw, S* db,
                             int64_t N, int64_t C) {
  std::vector<double> dw_acc(size_t(C), 0.0), db_acc(size_t(C), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const S* gr = g + n * C;
    const S* xr = x + n * C;
    double mu = mean[n], r = rstd[n], a = 0, bm = 0;
    for (int64_t c = 0; c < C; ++c) {
      double dxhat = double(gr[c]) * (w ? double(w[c]) : 1.0);
      a += dxhat;
      bm += dxhat * (double(xr[c]) - mu) * r;
    }
    a /= double(C);
    bm /= double(C);
    for (int64_t c = 0; c < C; ++c) {
      double xhat = (double(xr[c]) - mu) * r;
      double dxhat = double(gr[c]) * (w ? double(w[c]) : 1.0);
      if (dx) dx[n * C + c] = S(r * (dxhat - a - xhat * bm));
      dw_acc[size_t(c)] += double(gr[c]) * xhat;
      db_acc[size_t(c)] += double(gr[c]);
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dw) dw[c] = S(dw_acc[size_t(c)]);
    if (db) db[c] = S(db_acc[size_t(c)]);
  }
}

// ---- backward drivers (pick reference or fast kernels) ----
// saved = {x [N, C] contiguous, weight or undefined, rstd [N]}.
std::vector<Tensor> rms_norm_backward(const Tensor& g, const std::vector<Tensor>& saved, bool need_x, bool need_w) {
  const Tensor &x = saved[0], &w = saved[1], &rstd = saved[2];
  int64_t C = x.size(-1), N = x.numel() / C;
  Tensor gc = contig(g);
  Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
  Tensor dw = need_w ? Tensor::empty({C}, x.dtype()) : Tensor();
  LMLAB_DISPATCH_FLOAT(x.dtype(), "rms_norm_backward", [&] {
    auto* kernel = reference_mode() ? &rms_norm_backward_ref<scalar_t> : &cpu::rms_norm_backward<scalar_t>;
    kernel(gc.data<scalar_t>(), x.data<scalar_t>(), ptr_or_null<scalar_t>(w), rstd.data<scalar_t>(),
           ptr_or_null<scalar_t>(dx), ptr_or_null<scalar_t>(dw), N, C);
  });
  return {dx, dw};
}

// saved = {x, weight or undefined, mean [N], rstd [N]}.
std::vector<Tensor> layer_norm_backward(const Tensor& g, const std::vector<Tensor>& saved, bool need_x, bool need_w,
                                        bool need_b) {
  const Tensor &x = saved[0], &w = saved[1], &mean = saved[2], &rstd = saved[3];
  int64_t C = x.size(-1), N = x.numel() / C;
  Tensor gc = contig(g);
  Tensor dx = need_x ? Tensor::empty(x.shape(), x.dtype()) : Tensor();
  Tensor dw = need_w ? Tensor::empty({C}, x.dtype()) : Tensor();
  Tensor db = need_b ? Tensor::empty({C}, x.dtype()) : Tensor();
  LMLAB_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward", [&] {
    auto* kernel = reference_mode() ? &layer_norm_backward_ref<scalar_t> : &cpu::layer_norm_backward<scalar_t>;
    kernel(gc.data<scalar_t>(), x.data<scalar_t>(), ptr_or_null<scalar_t>(w), mean.data<scalar_t>(),
           rstd.data<scalar_t>(), ptr_or_null<scalar_t>(dx), ptr_or_null<scalar_t>(dw), ptr_or_null<scalar_t>(db), N,
           C);
  });
  return {dx, dw, db};
}

bool needs_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  int64_t C = check_norm_args("rms_norm", x, weight, Tensor(), eps);
  int64_t N = x.numel() / C;
  Tensor xc = contig(x), wc = weight.defined() ? contig(weight) : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype());  // [..., C]
  Tensor rstd = Tensor::empty({N}, x.dtype());     // [N], N = numel / C rows
  LMLAB_DISPATCH_FLOAT(x.dtype(), "rms_norm", [&] {
    auto* kernel = reference_mode() ? &rms_norm_forward_ref<scalar_t> : &cpu::rms_norm_forward<scalar_t>;
    kernel(xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc), y.data<scalar_t>(), rstd.data<scalar_t>(), N, C, eps);
  });
  bool need_x = needs_grad(x), need_w = needs_grad(weight);
  return record(y, "rms_norm", {x, weight}, {xc.detach(), wc.defined() ? wc.detach() : Tensor(), rstd},
                [need_x, need_w](const Tensor& g, const std::vector<Tensor>& s) {
                  return rms_norm_backward(g, s, need_x, need_w);
                });
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  int64_t C = check_norm_args("layer_norm", x, weight, bias, eps);
  int64_t N = x.numel() / C;
  Tensor xc = contig(x), wc = weight.defined() ? contig(weight) : Tensor();
  Tensor bc = bias.defined() ? contig(bias) : Tensor();
  Tensor y = Tensor::empty(x.shape(), x.dtype());  // [..., C]
  Tensor mean = Tensor::empty({N}, x.dtype());     // [N]
  Tensor rstd = Tensor::empty({N}, x.dtype());     // [N]
  LMLAB_DISPATCH_FLOAT(x.dtype(), "layer_norm", [&] {
    auto* kernel = reference_mode() ? &layer_norm_forward_ref<scalar_t> : &cpu::layer_norm_forward<scalar_t>;
    kernel(xc.data<scalar_t>(), ptr_or_null<scalar_t>(wc), ptr_or_null<scalar_t>(bc), y.data<scalar_t>(),
           mean.data<scalar_t>(), rstd.data<scalar_t>(), N, C, eps);
  });
  bool need_x = needs_grad(x), need_w = needs_grad(weight), need_b = needs_grad(bias);
  return record(y, "layer_norm", {x, weight, bias},
                {xc.detach(), wc.defined() ? wc.detach() : Tensor(), mean, rstd},
                [need_x, need_w, need_b](const Tensor& g, const std::vector<Tensor>& s) {
                  return layer_norm_backward(g, s, need_x, need_w, need_b);
                });
}

}  // namespace lmlab
