// Elementwise ops: validation, reference kernels (double, sequential, strided), fast kernels
// (ops/cpu/elementwise.cpp), and autograd wiring. Unary backwards are fused kernels g * f'(x, y);
// binary backwards are composites reduced to the input shapes with sum_to.
#include "lmlab/ops/elementwise.h"

#include "lmlab/ops/cpu/elementwise_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/reduce.h"

namespace lmlab {

using namespace detail;

namespace {

// ---- unary: reference kernels ----
template <class F>
Tensor unary_forward_ref(const Tensor& x, const F& f) {
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  LMLAB_DISPATCH_FLOAT(x.dtype(), F::kName, [&] {
    const scalar_t* xp = static_cast<const scalar_t*>(x.raw_data());
    scalar_t* yp = y.data<scalar_t>();
    for (int64_t i = 0; i < x.numel(); ++i)
      yp[i] = scalar_t(f.template f<double>(double(xp[offset_of(i, x.shape(), x.strides())])));
  });
  return y;
}

template <class F>
Tensor unary_backward_ref(const Tensor& g, const Tensor& x, const Tensor& y, const F& f) {
  Tensor gx = Tensor::empty(x.shape(), x.dtype());
  LMLAB_DISPATCH_FLOAT(x.dtype(), F::kName, [&] {
    const scalar_t* xp = static_cast<const scalar_t*>(x.raw_data());
    const scalar_t* yp = static_cast<const scalar_t*>(y.raw_data());
    const scalar_t* gp = static_cast<const scalar_t*>(g.raw_data());
    scalar_t* o = gx.data<scalar_t>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double xv = xp[offset_of(i, x.shape(), x.strides())], yv = yp[offset_of(i, y.shape(), y.strides())];
      double gv = gp[offset_of(i, g.shape(), g.strides())];
      o[i] = scalar_t(gv * f.template d<double>(xv, yv));
    }
  });
  return gx;
}

template <class F>
Tensor unary_backward(const Tensor& g, const Tensor& x, const Tensor& y, const F& f) {
  if (reference_mode()) return unary_backward_ref(g, x, y, f);
  Tensor gx = Tensor::empty(x.shape(), x.dtype());
  Tensor gc = contig(g), xc = contig(x), yc = contig(y);
  LMLAB_DISPATCH_FLOAT(x.dtype(), F::kName, [&] {
    cpu::unary_backward_kernel<scalar_t>(gc.data<scalar_t>(), xc.data<scalar_t>(), yc.data<scalar_t>(),
                                         gx.data<scalar_t>(), x.numel(), f);
  });
  return gx;
}

template <class F>
Tensor unary(const Tensor& x, const F& f) {
  check_float(x, F::kName, "x");
  Tensor y;
  if (reference_mode()) {
    y = unary_forward_ref(x, f);
  } else {
    Tensor xc = contig(x);
    y = Tensor::empty(x.shape(), x.dtype());
    LMLAB_DISPATCH_FLOAT(x.dtype(), F::kName, [&] {
      cpu::unary_kernel<scalar_t>(xc.data<scalar_t>(), y.data<scalar_t>(), x.numel(), f);
    });
  }
  if (!GradMode::enabled() || !x.requires_grad()) return y;
  return record(y, F::kName, {x}, {x.detach(), y.detach()}, [f](const Tensor& g, const std::vector<Tensor>& s) {
    return std::vector<Tensor>{unary_backward(g, s[0], s[1], f)};
  });
}

// ---- binary ----
template <class F>
Tensor binary_forward(const Tensor& a, const Tensor& b, const F& f) {
  check_float(a, F::kName, "a");
  check_float(b, F::kName, "b");
  check_same_dtype(a, b, F::kName);
  Shape out_shape = broadcast_shapes(a.shape(), b.shape(), F::kName);
  Tensor out = Tensor::empty(out_shape, a.dtype());
  Strides sa = broadcast_strides(a.shape(), a.strides(), out_shape);
  Strides sb = broadcast_strides(b.shape(), b.strides(), out_shape);
  LMLAB_DISPATCH_FLOAT(a.dtype(), F::kName, [&] {
    const scalar_t* ap = static_cast<const scalar_t*>(a.raw_data());
    const scalar_t* bp = static_cast<const scalar_t*>(b.raw_data());
    scalar_t* op = out.data<scalar_t>();
    if (reference_mode()) {
      for (int64_t i = 0; i < out.numel(); ++i)
        op[i] = scalar_t(f.template f<double>(double(ap[offset_of(i, out_shape, sa)]),
                                              double(bp[offset_of(i, out_shape, sb)])));
      return;
    }
    if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
      cpu::binary_kernel_contig<scalar_t>(ap, bp, op, out.numel(), f);
    } else if (b.numel() == 1 && a.shape() == out_shape && a.is_contiguous()) {
      cpu::binary_kernel_scalar_b<scalar_t>(ap, *bp, op, out.numel(), f);
    } else {
      Strides so = contiguous_strides(out_shape);
      for_each_row<3>(out_shape, {sa, sb, so}, [&](const std::array<int64_t, 3>& off, int64_t inner,
                                                    const std::array<int64_t, 3>& ist) {
        cpu::binary_kernel_row<scalar_t>(ap + off[0], ist[0], bp + off[1], ist[1], op + off[2], inner, f);
      });
    }
  });
  return out;
}

struct AddF { static constexpr const char* kName = "add";
  template <class T> T f(T a, T b) const { return a + b; } };
struct SubF { static constexpr const char* kName = "sub";
  template <class T> T f(T a, T b) const { return a - b; } };
struct MulF { static constexpr const char* kName = "mul";
  template <class T> T f(T a, T b) const { return a * b; } };
struct DivF { static constexpr const char* kName = "div";
  template <class T> T f(T a, T b) const { return a / b; } };
struct PowF { static constexpr const char* kName = "pow";
  template <class T> T f(T a, T b) const { return std::pow(a, b); } };
struct GtF { static constexpr const char* kName = "gt";
  template <class T> T f(T a, T b) const { return a > b ? T(1) : T(0); } };
struct EqF { static constexpr const char* kName = "eq";
  template <class T> T f(T a, T b) const { return a == b ? T(1) : T(0); } };

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(a, b, AddF{});
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "add", {a, b}, {}, [sa, sb](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
  });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(a, b, SubF{});
  Shape sa = a.shape(), sb = b.shape();
  return record(out, "sub", {a, b}, {}, [sa, sb](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)};
  });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(a, b, MulF{});
  bool ra = a.defined() && a.requires_grad(), rb = b.defined() && b.requires_grad();
  return record(out, "mul", {a, b}, {rb ? a.detach() : Tensor(), ra ? b.detach() : Tensor()},
                [ra, rb, sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<Tensor>& s) {
                  return std::vector<Tensor>{ra ? sum_to(mul(g, s[1]), sa) : Tensor(),
                                             rb ? sum_to(mul(g, s[0]), sb) : Tensor()};
                });
}
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(a, b, DivF{});
  return record(out, "div", {a, b}, {b.detach(), out.detach()},
                [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<Tensor>& s) {
                  Tensor ga = div(g, s[0]);
                  return std::vector<Tensor>{sum_to(ga, sa), sum_to(neg(mul(ga, s[1])), sb)};
                });
}
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(a, b, PowF{});
  return record(out, "pow", {a, b}, {a.detach(), b.detach(), out.detach()},
                [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<Tensor>& s) {
                  // d/da a^b = b a^(b-1); d/db a^b = a^b log a
                  Tensor ga = mul(g, mul(s[1], pow(s[0], add(s[1], -1.0))));
                  Tensor gb = mul(g, mul(s[2], log(s[0])));
                  return std::vector<Tensor>{sum_to(ga, sa), sum_to(gb, sb)};
                });
}
Tensor gt(const Tensor& a, const Tensor& b) {
  NoGrad ng;
  return binary_forward(a, b, GtF{}).to(DType::U8);
}
Tensor eq(const Tensor& a, const Tensor& b) {
  NoGrad ng;
  return binary_forward(a, b, EqF{}).to(DType::U8);
}

// ---- unary functors: f(x) and f'(x) given x and y = f(x) ----
namespace {
template <class T> inline T sigm(T x) {
  return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}
constexpr double kSqrt2OverPi = 0.7978845608028654, kInvSqrt2 = 0.7071067811865476,
                 kInvSqrt2Pi = 0.3989422804014327;

struct NegF { static constexpr const char* kName = "neg";
  template <class T> T f(T x) const { return -x; }
  template <class T> T d(T, T) const { return T(-1); } };
struct ExpF { static constexpr const char* kName = "exp";
  template <class T> T f(T x) const { return std::exp(x); }
  template <class T> T d(T, T y) const { return y; } };
struct LogF { static constexpr const char* kName = "log";
  template <class T> T f(T x) const { return std::log(x); }
  template <class T> T d(T x, T) const { return T(1) / x; } };
struct SqrtF { static constexpr const char* kName = "sqrt";
  template <class T> T f(T x) const { return std::sqrt(x); }
  template <class T> T d(T, T y) const { return T(0.5) / y; } };
struct RsqrtF { static constexpr const char* kName = "rsqrt";
  template <class T> T f(T x) const { return T(1) / std::sqrt(x); }
  template <class T> T d(T, T y) const { return T(-0.5) * y * y * y; } };
struct AbsF { static constexpr const char* kName = "abs";
  template <class T> T f(T x) const { return std::abs(x); }
  template <class T> T d(T x, T) const { return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0)); } };
struct TanhF { static constexpr const char* kName = "tanh";
  template <class T> T f(T x) const { return std::tanh(x); }
  template <class T> T d(T, T y) const { return T(1) - y * y; } };
struct SigmoidF { static constexpr const char* kName = "sigmoid";
  template <class T> T f(T x) const { return sigm(x); }
  template <class T> T d(T, T y) const { return y * (T(1) - y); } };
struct SiluF { static constexpr const char* kName = "silu";
  template <class T> T f(T x) const { return x * sigm(x); }
  template <class T> T d(T x, T) const { T s = sigm(x); return s * (T(1) + x * (T(1) - s)); } };
struct GeluTanhF { static constexpr const char* kName = "gelu_tanh";
  template <class T> T f(T x) const {
    return T(0.5) * x * (T(1) + std::tanh(T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x)));
  }
  template <class T> T d(T x, T) const {
    T t = std::tanh(T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x));
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
  } };
struct GeluExactF { static constexpr const char* kName = "gelu";
  template <class T> T f(T x) const { return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2))); }
  template <class T> T d(T x, T) const {
    return T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2))) + x * std::exp(T(-0.5) * x * x) * T(kInvSqrt2Pi);
  } };
struct ReluF { static constexpr const char* kName = "relu";
  template <class T> T f(T x) const { return x > T(0) ? x : T(0); }
  template <class T> T d(T x, T) const { return x > T(0) ? T(1) : T(0); } };
struct SoftplusF { static constexpr const char* kName = "softplus";
  double beta, thr;
  template <class T> T f(T x) const {
    T bx = T(beta) * x;
    return bx > T(thr) ? x : std::log1p(std::exp(bx)) / T(beta);
  }
  template <class T> T d(T x, T) const { T bx = T(beta) * x; return bx > T(thr) ? T(1) : sigm(bx); } };
struct ClampF { static constexpr const char* kName = "clamp";
  double lo, hi;
  template <class T> T f(T x) const { return x < T(lo) ? T(lo) : (x > T(hi) ? T(hi) : x); }
  template <class T> T d(T x, T) const { return (x >= T(lo) && x <= T(hi)) ? T(1) : T(0); } };
struct PowScalarF { static constexpr const char* kName = "pow";
  double e;
  template <class T> T f(T x) const { return e == 2.0 ? x * x : std::pow(x, T(e)); }
  template <class T> T d(T x, T) const { return e == 2.0 ? T(2) * x : T(e) * std::pow(x, T(e - 1)); } };
struct AddScalarF { static constexpr const char* kName = "add";
  double s;
  template <class T> T f(T x) const { return x + T(s); }
  template <class T> T d(T, T) const { return T(1); } };
struct MulScalarF { static constexpr const char* kName = "mul";
  double s;
  template <class T> T f(T x) const { return x * T(s); }
  template <class T> T d(T, T) const { return T(s); } };
}  // namespace

Tensor neg(const Tensor& x) { return unary(x, NegF{}); }
Tensor exp(const Tensor& x) { return unary(x, ExpF{}); }
Tensor log(const Tensor& x) { return unary(x, LogF{}); }
Tensor sqrt(const Tensor& x) { return unary(x, SqrtF{}); }
Tensor rsqrt(const Tensor& x) { return unary(x, RsqrtF{}); }
Tensor abs(const Tensor& x) { return unary(x, AbsF{}); }
Tensor tanh(const Tensor& x) { return unary(x, TanhF{}); }
Tensor sigmoid(const Tensor& x) { return unary(x, SigmoidF{}); }
Tensor silu(const Tensor& x) { return unary(x, SiluF{}); }
Tensor gelu(const Tensor& x, bool tanh_approx) {
  return tanh_approx ? unary(x, GeluTanhF{}) : unary(x, GeluExactF{});
}
Tensor relu(const Tensor& x) { return unary(x, ReluF{}); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  LMLAB_CHECK(beta > 0, ValueError, "[softplus] beta must be positive, got ", beta);
  return unary(x, SoftplusF{beta, threshold});
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  LMLAB_CHECK(!(lo > hi), ValueError, "[clamp] lower bound ", lo, " exceeds upper bound ", hi);
  return unary(x, ClampF{lo, hi});
}
Tensor pow(const Tensor& a, double e) { return unary(a, PowScalarF{e}); }
Tensor add(const Tensor& a, double s) { return unary(a, AddScalarF{s}); }
Tensor mul(const Tensor& a, double s) { return unary(a, MulScalarF{s}); }

// ---- where / masked_fill ----
namespace {
Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = Tensor::empty(s, a.dtype());
  Strides sc = broadcast_strides(cond.shape(), cond.strides(), s);
  Strides sa = broadcast_strides(a.shape(), a.strides(), s);
  Strides sb = broadcast_strides(b.shape(), b.strides(), s);
  Strides so = contiguous_strides(s);
  const uint8_t* cp = static_cast<const uint8_t*>(cond.raw_data());
  LMLAB_DISPATCH_FLOAT(a.dtype(), "where", [&] {
    const scalar_t* ap = static_cast<const scalar_t*>(a.raw_data());
    const scalar_t* bp = static_cast<const scalar_t*>(b.raw_data());
    scalar_t* op = out.data<scalar_t>();
    if (reference_mode()) {
      for (int64_t i = 0; i < out.numel(); ++i)
        op[i] = cp[offset_of(i, s, sc)] ? ap[offset_of(i, s, sa)] : bp[offset_of(i, s, sb)];
      return;
    }
    for_each_row<4>(s, {sc, sa, sb, so}, [&](const std::array<int64_t, 4>& off, int64_t inner,
                                             const std::array<int64_t, 4>& st) {
      const uint8_t* c = cp + off[0];
      const scalar_t* x = ap + off[1];
      const scalar_t* y = bp + off[2];
      scalar_t* o = op + off[3];
      for (int64_t i = 0; i < inner; ++i) o[i] = c[i * st[0]] ? x[i * st[1]] : y[i * st[2]];
    });
  });
  return out;
}
}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  LMLAB_CHECK(cond.dtype() == DType::U8, DTypeError, "[where] cond must be u8, got ", dtype_name(cond.dtype()));
  check_float(a, "where", "a");
  check_float(b, "where", "b");
  check_same_dtype(a, b, "where");
  Tensor out = where_forward(cond, a, b);
  return record(out, "where", {a, b}, {cond},
                [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<Tensor>& s) {
                  Tensor z = Tensor::zeros({}, g.dtype());
                  return std::vector<Tensor>{sum_to(where(s[0], g, z), sa), sum_to(where(s[0], z, g), sb)};
                });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_float(x, "masked_fill", "x");
  check_defined(mask, "masked_fill", "mask");
  LMLAB_CHECK(mask.dtype() == DType::U8, DTypeError, "[masked_fill] mask must be u8, got ",
              dtype_name(mask.dtype()));
  Shape s = broadcast_shapes(x.shape(), mask.shape(), "masked_fill");
  LMLAB_CHECK(s == x.shape(), ShapeError, "[masked_fill] mask ", shape_str(mask.shape()),
              " must broadcast to x ", shape_str(x.shape()));
  return where(mask, Tensor::full({}, value, x.dtype()), x);
}

// ---- in-place ----
namespace {
void check_inplace(const Tensor& x, const char* op) {
  check_float(x, op, "x");
  LMLAB_CHECK(!(GradMode::enabled() && x.requires_grad()), AutogradError, "[", op,
              "] in-place update of a tensor that requires grad while recording; use NoGrad");
}
}  // namespace

void add_(const Tensor& x, const Tensor& y, double alpha) {
  check_inplace(x, "add_");
  check_same_dtype(x, y, "add_");
  LMLAB_CHECK(x.shape() == y.shape(), ShapeError, "[add_] shape mismatch ", shape_str(x.shape()), " vs ",
              shape_str(y.shape()));
  LMLAB_CHECK(x.is_contiguous(), ValueError, "[add_] destination must be contiguous");
  Tensor yc = contig(y);
  LMLAB_DISPATCH_FLOAT(x.dtype(), "add_", [&] {
    scalar_t* xp = x.data<scalar_t>();
    const scalar_t* yp = yc.data<scalar_t>();
    scalar_t a = scalar_t(alpha);
    parallel_for(0, x.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) xp[i] += a * yp[i];
    });
  });
}
void mul_(const Tensor& x, double s) {
  check_inplace(x, "mul_");
  LMLAB_CHECK(x.is_contiguous(), ValueError, "[mul_] destination must be contiguous");
  LMLAB_DISPATCH_FLOAT(x.dtype(), "mul_", [&] {
    scalar_t* xp = x.data<scalar_t>();
    scalar_t a = scalar_t(s);
    parallel_for(0, x.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) xp[i] *= a;
    });
  });
}
void fill_(const Tensor& x, double v) {
  check_defined(x, "fill_", "x");
  LMLAB_CHECK(!(GradMode::enabled() && x.requires_grad()), AutogradError,
              "[fill_] in-place update of a tensor that requires grad while recording; use NoGrad");
  copy_into(x, Tensor::full(x.shape(), v, x.dtype()));
}
void copy_(const Tensor& dst, const Tensor& src) {
  check_defined(dst, "copy_", "dst");
  check_defined(src, "copy_", "src");
  LMLAB_CHECK(!(GradMode::enabled() && dst.requires_grad()), AutogradError,
              "[copy_] in-place update of a tensor that requires grad while recording; use NoGrad");
  LMLAB_CHECK(dst.shape() == src.shape(), ShapeError, "[copy_] shape mismatch ", shape_str(dst.shape()), " vs ",
              shape_str(src.shape()));
  copy_into(dst, src);
}

}  // namespace lmlab
