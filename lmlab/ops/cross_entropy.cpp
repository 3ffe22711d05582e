// Fused cross-entropy: validation, reference kernels, autograd wiring. Fast kernels:
// ops/cpu/cross_entropy.cpp. Semantics of torch.nn.functional.cross_entropy (ignore_index,
// label_smoothing, reduction) plus PaLM's z-loss (Chowdhery et al. 2022, sec. 5). One difference:
// a Mean over rows that are all ignored is 0 (torch returns nan), with a zero gradient.
#include "lmlab/ops/cross_entropy.h"

#include "lmlab/ops/cpu/cross_entropy_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

constexpr const char* kOp = "cross_entropy";

// Reference forward: plain double loops over [N, V].
template <class T>
void cross_entropy_ref(const T* x, const int64_t* target, int64_t N, int64_t V, const cpu::CrossEntropyParams& p,
                       T* lse, double* row_loss) {
  for (int64_t i = 0; i < N; ++i) {
    int64_t t = target[i];
    if (t == p.ignore_index) {
      lse[i] = T(0);
      row_loss[i] = 0;
      continue;
    }
    const T* xr = x + i * V;
    double m = -INFINITY;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, double(xr[j]));
    double s = 0, sx = 0;
    for (int64_t j = 0; j < V; ++j) {
      s += std::exp(double(xr[j]) - m);
      sx += double(xr[j]);
    }
    double l = m + std::log(s);
    lse[i] = T(l);
    double loss = (1 - p.label_smoothing) * (l - double(xr[t]));  // -log p_t
    // mean_j -log p_j, only when smoothing: it is inf for masked (-inf) logits, and 0 * inf is NaN.
    if (p.label_smoothing > 0) loss += p.label_smoothing * (l - sx / double(V));
    if (p.z_loss > 0) loss += p.z_loss * l * l;
    row_loss[i] = loss;
  }
}

// Reference backward: grad = g_i ((1 + 2 z lse) p - (1 - eps) onehot - eps / V) per element, in double.
template <class T>
void cross_entropy_backward_ref(const T* x, const int64_t* target, const T* lse, const T* g, int64_t g_stride,
                                double g_scale, int64_t N, int64_t V, const cpu::CrossEntropyParams& p, T* grad) {
  for (int64_t i = 0; i < N; ++i) {
    int64_t t = target[i];
    for (int64_t j = 0; j < V; ++j) {
      if (t == p.ignore_index) {
        grad[i * V + j] = T(0);
        continue;
      }
      double gi = double(g[i * g_stride]) * g_scale, l = double(lse[i]);
      double prob = std::exp(double(x[i * V + j]) - l);
      double target_w = (j == t ? 1 - p.label_smoothing : 0) + p.label_smoothing / double(V);
      grad[i * V + j] = T(gi * ((1 + 2 * p.z_loss * l) * prob - target_w));
    }
  }
}

// Targets as contiguous i64 [N], range-checked (before any parallel region); counts non-ignored rows.
Tensor checked_targets(const Tensor& target, int64_t V, int64_t ignore_index, int64_t& count) {
  Tensor tc = contig(target);
  int64_t N = tc.numel();
  count = 0;
  for (int64_t i = 0; i < N; ++i) {
    int64_t v = index_at(tc, i);
    if (v == ignore_index) continue;
    LMLAB_CHECK(v >= 0 && v < V, IndexError, "[cross_entropy] target ", v, " out of range [0, ", V, ") at row ", i,
                " (ignore_index is ", ignore_index, ")");
    ++count;
  }
  if (tc.dtype() == DType::I64) return tc;
  Tensor t64 = Tensor::empty({N}, DType::I64);
  for (int64_t i = 0; i < N; ++i) t64.data<int64_t>()[i] = index_at(tc, i);
  return t64;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& target, const CrossEntropyOptions& opt) {
  check_float(logits_in, kOp, "logits");
  check_index_dtype(target, kOp, "target");
  LMLAB_CHECK(logits_in.dim() == 2, ShapeError, "[cross_entropy] logits must be [N, V]: got ",
              shape_str(logits_in.shape()));
  const int64_t N = logits_in.size(0), V = logits_in.size(1);
  LMLAB_CHECK(target.dim() == 1 && target.size(0) == N, ShapeError,
              "[cross_entropy] target must be [N] matching logits [N, V]: got target ", shape_str(target.shape()),
              " for logits ", shape_str(logits_in.shape()));
  LMLAB_CHECK(V >= 1, ShapeError, "[cross_entropy] logits need at least one class: got ",
              shape_str(logits_in.shape()));
  LMLAB_CHECK(opt.label_smoothing >= 0 && opt.label_smoothing <= 1, ValueError,
              "[cross_entropy] label_smoothing must be in [0, 1]: got ", opt.label_smoothing);
  LMLAB_CHECK(opt.z_loss >= 0 && std::isfinite(opt.z_loss), ValueError,
              "[cross_entropy] z_loss must be finite and >= 0: got ", opt.z_loss);
  LMLAB_CHECK(opt.reduction == Reduction::Mean || opt.reduction == Reduction::Sum ||
                  opt.reduction == Reduction::None,
              ValueError, "[cross_entropy] unknown reduction ", int(opt.reduction));

  int64_t count = 0;
  Tensor t64 = checked_targets(target, V, opt.ignore_index, count);
  // Non-contiguous logits are copied once; the kernels and the backward read the copy.
  Tensor logits = contig(logits_in.detach());
  const DType dt = logits.dtype();
  const cpu::CrossEntropyParams p{opt.ignore_index, opt.label_smoothing, opt.z_loss};

  // Saved for the backward: lse [N] (the only new tensor), logits and targets by reference.
  Tensor lse = Tensor::empty({N}, dt);
  std::vector<double> row_loss(static_cast<size_t>(N));
  LMLAB_DISPATCH_FLOAT(dt, kOp, [&] {
    if (reference_mode())
      cross_entropy_ref<scalar_t>(logits.data<scalar_t>(), t64.data<int64_t>(), N, V, p, lse.data<scalar_t>(),
                                  row_loss.data());
    else
      cpu::cross_entropy_forward<scalar_t>(logits.data<scalar_t>(), t64.data<int64_t>(), N, V, p,
                                           lse.data<scalar_t>(), row_loss.data());
  });

  Tensor out;
  double g_scale = 1;
  if (opt.reduction == Reduction::None) {
    out = Tensor::empty({N}, dt);
    LMLAB_DISPATCH_FLOAT(dt, kOp, [&] {
      for (int64_t i = 0; i < N; ++i) out.data<scalar_t>()[i] = scalar_t(row_loss[size_t(i)]);
    });
  } else {
    // Summed in row order in double: the loss does not depend on the thread count.
    double total = 0;
    for (double l : row_loss) total += l;
    if (opt.reduction == Reduction::Mean) {
      g_scale = count > 0 ? 1.0 / double(count) : 0.0;
      total *= g_scale;
    }
    out = Tensor::scalar(total, dt);
  }

  const bool per_row = opt.reduction == Reduction::None;
  return record(out, kOp, {logits_in, target}, {logits, t64, lse},
                [p, g_scale, per_row, N, V](const Tensor& g_in, const std::vector<Tensor>& s) {
                  const Tensor& x = s[0];
                  Tensor g = contig(g_in.dtype() == x.dtype() ? g_in : g_in.to(x.dtype()));
                  // [N, V]: the one vocabulary-sized buffer of the whole op.
                  Tensor grad = Tensor::empty({N, V}, x.dtype());
                  const int64_t g_stride = per_row ? 1 : 0;
                  LMLAB_DISPATCH_FLOAT(x.dtype(), kOp, [&] {
                    auto kernel = reference_mode() ? cross_entropy_backward_ref<scalar_t>
                                                   : cpu::cross_entropy_backward<scalar_t>;
                    kernel(x.data<scalar_t>(), s[1].data<int64_t>(), s[2].data<scalar_t>(), g.data<scalar_t>(),
                           g_stride, g_scale, N, V, p, grad.data<scalar_t>());
                  });
                  return std::vector<Tensor>{grad, Tensor()};
                });
}

}  // namespace lmlab
