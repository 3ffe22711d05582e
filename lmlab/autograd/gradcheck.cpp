// Finite-difference gradient checker and the tensor comparison helper.
#include "lmlab/autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "lmlab/autograd/engine.h"
#include "lmlab/core/node.h"
#include "lmlab/core/rng.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/reduce.h"

namespace lmlab {

namespace {
double projected(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& xs,
                 const Tensor& R) {
  NoGrad ng;
  Tensor y = f(xs);
  Tensor yd = y.to(DType::F64);
  const double* a = yd.contiguous().data<double>();
  const double* r = R.data<double>();
  double s = 0;
  for (int64_t i = 0; i < yd.numel(); ++i) s += a[i] * r[i];
  return s;
}
}  // namespace

CheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                      const GradcheckOptions& opt) {
  CheckResult res;
  std::vector<Tensor> xs;
  std::vector<bool> diff(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    bool want = opt.check.empty() ? (t.defined() && is_floating(t.dtype())) : opt.check[i];
    diff[i] = want;
    if (want) {
      Tensor d = Tensor::empty(t.shape(), DType::F64);
      copy_into(d, t);
      d.set_requires_grad(true);
      xs.push_back(d);
    } else {
      xs.push_back(t);
    }
  }
  Tensor y = f(xs);
  LMLAB_CHECK(y.dtype() == DType::F64, DTypeError, "[gradcheck] output must be f64, got ", dtype_name(y.dtype()));
  Generator gen(opt.seed);
  Tensor R = Tensor::randn(y.shape(), gen, DType::F64);
  if (!y.requires_grad()) {
    res.ok = false;
    res.message = "output does not require grad";
    return res;
  }
  Tensor loss = sum(mul(y, R));
  loss.backward();
  std::ostringstream msg;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!diff[i]) continue;
    Tensor x = xs[i];
    Tensor ga = x.grad().defined() ? x.grad().contiguous() : Tensor::zeros(x.shape(), DType::F64);
    double* xp = x.data<double>();
    const double* gp = ga.data<double>();
    int64_t n = x.numel();
    int64_t step = n > opt.max_elems ? (n + opt.max_elems - 1) / opt.max_elems : 1;
    for (int64_t j = 0; j < n; j += step) {
      double orig = xp[j];
      auto at = [&](double h) {
        xp[j] = orig + h;
        double v = projected(f, xs, R);
        xp[j] = orig;
        return v;
      };
      double num;
      if (opt.four_point) {
        num = (-at(2 * opt.eps) + 8 * at(opt.eps) - 8 * at(-opt.eps) + at(-2 * opt.eps)) / (12 * opt.eps);
      } else {
        num = (at(opt.eps) - at(-opt.eps)) / (2 * opt.eps);
      }
      double err = std::abs(gp[j] - num);
      res.max_abs = std::isnan(err) ? INFINITY : std::max(res.max_abs, err);  // NaN must not vanish
      if (!(err <= opt.atol + opt.rtol * std::abs(num))) {
        if (res.ok) msg << "input " << i << " " << shape_str(x.shape()) << " element " << j << ": analytic " << gp[j]
                        << " numeric " << num << " (|diff| " << err << ")";
        res.ok = false;
      }
    }
  }
  res.message = msg.str();
  return res;
}

CheckResult compare(const std::string& name, const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  CheckResult r;
  std::ostringstream msg;
  if (!actual.defined() || !expected.defined()) {
    r.ok = actual.defined() == expected.defined();
    r.message = name + (r.ok ? "" : ": one side undefined");
    return r;
  }
  if (actual.shape() != expected.shape()) {
    r.ok = false;
    r.message = name + ": shape " + shape_str(actual.shape()) + " vs expected " + shape_str(expected.shape());
    return r;
  }
  auto a = actual.to_vector<double>();
  auto e = expected.to_vector<double>();
  double se = 0, sd = 0;
  int64_t worst = -1;
  double worst_excess = 0;
  bool bad = false;
  for (size_t i = 0; i < a.size(); ++i) {
    bool ae = std::isfinite(a[i]), ee = std::isfinite(e[i]);
    double d;
    if (!ae || !ee) {
      bool same = (std::isnan(a[i]) && std::isnan(e[i])) || a[i] == e[i];
      d = same ? 0 : INFINITY;
    } else {
      d = std::abs(a[i] - e[i]);
      se += e[i] * e[i];
      sd += d * d;
    }
    r.max_abs = std::max(r.max_abs, d);  // d is INFINITY for a NaN/Inf mismatch
    if (d == 0) continue;                // exact match (incl. the same Inf, or NaN on both sides)
    double excess = d - (atol + rtol * std::abs(e[i]));
    if (excess > 0 || std::isnan(excess)) {
      bad = true;
      if (worst < 0 || excess > worst_excess) { worst = int64_t(i); worst_excess = excess; }
    }
  }
  r.nrmse = se > 0 ? std::sqrt(sd / se) : std::sqrt(sd);
  r.ok = !bad;
  msg << name << " " << shape_str(actual.shape()) << ": max_abs " << r.max_abs << ", nrmse " << r.nrmse;
  if (bad) {
    msg << "; worst at flat index " << worst << ": got " << a[size_t(worst)] << " expected " << e[size_t(worst)]
        << " (atol " << atol << ", rtol " << rtol << "); first values:";
    for (size_t i = 0; i < a.size() && i < 5; ++i) msg << " (" << a[i] << " vs " << e[i] << ")";
  }
  r.message = msg.str();
  return r;
}

}  // namespace lmlab
