// Reductions. Inputs are arranged as [outer, R] (reduced axes last) or [R, inner] (reduced axes
// leading, e.g. bias gradients) so the fast kernels stream memory; other layouts are permuted
// and copied first. Reference kernels walk logical indices with double accumulation.
#include "lmlab/ops/reduce.h"

#include <algorithm>
#include <limits>

#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/elementwise.h"

namespace lmlab {

using namespace detail;

namespace {

enum class Red { Sum, Max, Min };

struct Plan {
  std::vector<int64_t> red;   // reduced dims, sorted
  std::vector<int64_t> kept;  // kept dims, sorted
  Shape out_keep;             // output shape with keepdim
  Shape out;                  // output shape without keepdim
  int64_t R = 1, O = 1;
};

Plan make_plan(const Tensor& x, std::vector<int64_t> dims, const char* op) {
  Plan p;
  int64_t nd = x.dim();
  std::vector<bool> is_red(size_t(nd), dims.empty());
  for (auto d : dims) {
    int64_t w = wrap_dim(d, nd, op);
    LMLAB_CHECK(!is_red[size_t(w)] || dims.empty(), IndexError, "[", op, "] dim ", d, " repeated");
    is_red[size_t(w)] = true;
  }
  for (int64_t d = 0; d < nd; ++d) {
    if (is_red[size_t(d)]) {
      p.red.push_back(d);
      p.R *= x.size(d);
      p.out_keep.push_back(1);
    } else {
      p.kept.push_back(d);
      p.O *= x.size(d);
      p.out_keep.push_back(x.size(d));
      p.out.push_back(x.size(d));
    }
  }
  return p;
}

// Reference: for each output element, walk its reduced elements by logical index.
template <class T>
void reduce_ref(const Tensor& x, const Plan& p, Red r, T* out) {
  const T* xp = static_cast<const T*>(x.raw_data());
  Shape rs, ks;
  for (auto d : p.red) rs.push_back(x.size(d));
  for (auto d : p.kept) ks.push_back(x.size(d));
  for (int64_t o = 0; o < p.O; ++o) {
    int64_t base = 0, rem = o;
    for (int64_t k = int64_t(p.kept.size()) - 1; k >= 0; --k) {
      base += (rem % ks[size_t(k)]) * x.stride(p.kept[size_t(k)]);
      rem /= ks[size_t(k)];
    }
    double acc = r == Red::Sum ? 0.0 : (r == Red::Max ? -INFINITY : INFINITY);
    for (int64_t i = 0; i < p.R; ++i) {
      int64_t off = base, rr = i;
      for (int64_t k = int64_t(p.red.size()) - 1; k >= 0; --k) {
        off += (rr % rs[size_t(k)]) * x.stride(p.red[size_t(k)]);
        rr /= rs[size_t(k)];
      }
      double v = xp[off];
      if (r == Red::Sum) acc += v;
      else if (r == Red::Max) acc = (v > acc || std::isnan(v)) ? v : acc;
      else acc = (v < acc || std::isnan(v)) ? v : acc;
    }
    out[o] = T(acc);
  }
}

template <class T>
inline T combine(Red r, T a, T v) {
  if (r == Red::Sum) return a + v;
  if (r == Red::Max) return (v > a || std::isnan(v)) ? v : a;
  return (v < a || std::isnan(v)) ? v : a;
}

template <class T>
void reduce_fast(const Tensor& x, const Plan& p, Red r, T* out) {
  T init = r == Red::Sum ? T(0) : (r == Red::Max ? -std::numeric_limits<T>::infinity()
                                                 : std::numeric_limits<T>::infinity());
  // Leading-reduction layout: reduced dims all before kept dims and x contiguous -> [R, O].
  bool leading = x.is_contiguous() && !p.red.empty() &&
                 (p.kept.empty() || p.red.back() < p.kept.front());
  bool trailing = x.is_contiguous() && (p.red.empty() || p.kept.empty() || p.kept.back() < p.red.front());
  if (leading && !trailing) {
    const T* xp = x.data<T>();
    int64_t R = p.R, O = p.O;
    parallel_for(0, O, 256, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) out[j] = init;
      for (int64_t i = 0; i < R; ++i) {
        const T* row = xp + i * O;
        if (r == Red::Sum) {
          for (int64_t j = lo; j < hi; ++j) out[j] += row[j];
        } else {
          for (int64_t j = lo; j < hi; ++j) out[j] = combine(r, out[j], row[j]);
        }
      }
    });
    return;
  }
  Tensor xc = x;
  if (!trailing) {
    std::vector<int64_t> perm = p.kept;
    perm.insert(perm.end(), p.red.begin(), p.red.end());
    Shape ps;
    Strides pst;
    for (auto d : perm) { ps.push_back(x.size(d)); pst.push_back(x.stride(d)); }
    xc = contig(x.as_strided(ps, pst, x.offset()));
  }
  const T* xp = xc.data<T>();
  int64_t R = p.R;
  parallel_for(0, p.O, std::max<int64_t>(1, 16384 / std::max<int64_t>(R, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      const T* row = xp + o * R;
      if (r == Red::Sum) {
        // 8 partial sums: vectorises and halves rounding-error growth.
        T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= R; i += 8)
          for (int k = 0; k < 8; ++k) acc[k] += row[i + k];
        T s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; i < R; ++i) s += row[i];
        out[o] = s;
      } else {
        T a = init;
        for (int64_t i = 0; i < R; ++i) a = combine(r, a, row[i]);
        out[o] = a;
      }
    }
  });
}

Tensor reduce_raw(const Tensor& x, const Plan& p, Red r, const char* op) {
  Tensor out = Tensor::empty(p.out_keep, x.dtype());
  LMLAB_CHECK(!(r != Red::Sum && p.R == 0), ShapeError, "[", op, "] reduction over an empty dimension of ",
              shape_str(x.shape()));
  LMLAB_DISPATCH_FLOAT(x.dtype(), op, [&] {
    if (reference_mode()) reduce_ref<scalar_t>(x, p, r, out.data<scalar_t>());
    else reduce_fast<scalar_t>(x, p, r, out.data<scalar_t>());
  });
  return out;
}

Tensor finish(const Tensor& out_keep, const Plan& p, bool keepdim) {
  return keepdim ? out_keep : out_keep.reshape(p.out);
}

// amax/amin: gradient split evenly among the positions equal to the extremum.
Tensor extremum(const Tensor& x, std::vector<int64_t> dims, bool keepdim, Red r, const char* op) {
  check_float(x, op, "x");
  Plan p = make_plan(x, dims, op);
  Tensor out_keep = reduce_raw(x, p, r, op);
  Tensor res = finish(out_keep, p, keepdim);
  return record(res, op, {x}, {x.detach(), out_keep},
                [p](const Tensor& g, const std::vector<Tensor>& s) {
                  Tensor gk = g.reshape(p.out_keep);
                  Tensor m = eq(s[0], s[1]).to(s[0].dtype());
                  Tensor cnt = sum(m, p.red, true);
                  return std::vector<Tensor>{mul(div(m, cnt), gk)};
                });
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_float(x, "sum", "x");
  Plan p = make_plan(x, dims, "sum");
  Tensor res = finish(reduce_raw(x, p, Red::Sum, "sum"), p, keepdim);
  return record(res, "sum", {x}, {}, [p, xs = x.shape()](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g.reshape(p.out_keep).expand(xs)};
  });
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_float(x, "mean", "x");
  Plan p = make_plan(x, dims, "mean");
  LMLAB_CHECK(p.R > 0, ShapeError, "[mean] mean over an empty dimension of ", shape_str(x.shape()));
  return mul(sum(x, dims, keepdim), 1.0 / double(p.R));
}

Tensor max(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return extremum(x, std::move(dims), keepdim, Red::Max, "max");
}
Tensor min(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return extremum(x, std::move(dims), keepdim, Red::Min, "min");
}

Tensor logsumexp(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_float(x, "logsumexp", "x");
  Plan p = make_plan(x, dims, "logsumexp");
  Tensor out_keep;
  {
    NoGrad ng;
    Tensor m = reduce_raw(x, p, Red::Max, "logsumexp");
    // Rows that are all -inf keep m finite so the result is -inf, not NaN.
    Tensor m_safe = where(eq(m, Tensor::full({}, -INFINITY, x.dtype())), Tensor::zeros({}, x.dtype()), m);
    Tensor se = reduce_raw(exp(sub(x, m_safe)), p, Red::Sum, "logsumexp");
    out_keep = add(log(se), m_safe);
  }
  Tensor res = finish(out_keep, p, keepdim);
  return record(res, "logsumexp", {x}, {x.detach(), out_keep},
                [p](const Tensor& g, const std::vector<Tensor>& s) {
                  return std::vector<Tensor>{mul(exp(sub(s[0], s[1])), g.reshape(p.out_keep))};
                });
}

Tensor var(const Tensor& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  check_float(x, "var", "x");
  Plan p = make_plan(x, dims, "var");
  double denom = double(p.R - correction);
  LMLAB_CHECK(denom > 0, ShapeError, "[var] reduction of ", p.R, " elements with correction ", correction,
              " leaves no degrees of freedom");
  Tensor mu = mean(x, dims, true);
  Tensor d = sub(x, mu);
  return mul(sum(mul(d, d), dims, keepdim), 1.0 / denom);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_float(x, "argmax", "x");
  int64_t d = wrap_dim(dim, x.dim(), "argmax");
  LMLAB_CHECK(x.dim() == 0 || x.size(d) > 0, ShapeError, "[argmax] empty dimension ", d, " in ",
              shape_str(x.shape()));
  Tensor xt = x.dim() == 0 ? x.reshape({1}) : x;
  int64_t dd = x.dim() == 0 ? 0 : d;
  // Move `dd` last and make rows contiguous.
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < xt.dim(); ++i)
    if (i != dd) perm.push_back(i);
  perm.push_back(dd);
  Tensor xc;
  {
    NoGrad ng;
    xc = contig(xt.detach().permute(perm));
  }
  int64_t R = xt.size(dd), O = xt.numel() / std::max<int64_t>(R, 1);
  Tensor out = Tensor::empty({O}, DType::I64);
  int64_t* op = out.data<int64_t>();
  LMLAB_DISPATCH_FLOAT(x.dtype(), "argmax", [&] {
    const scalar_t* xp = xc.data<scalar_t>();
    auto row = [&](int64_t o) {
      const scalar_t* r = xp + o * R;
      int64_t best = 0;
      for (int64_t i = 1; i < R; ++i)
        if (r[i] > r[best] || (std::isnan(r[i]) && !std::isnan(r[best]))) best = i;
      op[o] = best;
    };
    if (reference_mode()) {
      for (int64_t o = 0; o < O; ++o) row(o);
    } else {
      parallel_for(0, O, 64, [&](int64_t lo, int64_t hi) { for (int64_t o = lo; o < hi; ++o) row(o); });
    }
  });
  Shape os;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i != d) os.push_back(x.size(i));
    else if (keepdim) os.push_back(1);
  }
  return out.reshape(os);
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  int64_t lead = g.dim() - int64_t(shape.size());
  LMLAB_CHECK(lead >= 0, ShapeError, "[sum_to] cannot reduce ", shape_str(g.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < g.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[size_t(i - lead)] == 1 && g.size(i) != 1) dims.push_back(i);
  }
  if (dims.empty()) return g.reshape(shape);
  return sum(g, dims, true).reshape(shape);
}

}  // namespace lmlab
