// attention: validation, shape inference, `_ref` kernels (the spec: per-query loops in double that
// materialise one score row at a time) and autograd wiring. Fast tiled kernels: ops/cpu/attention.cpp.
// References: FlashAttention-2 (Dao 2023) for the saved logsumexp; torch.nn.functional.scaled_dot_product_attention
// for the semantics.
#include "lmlab/ops/attention.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "lmlab/ops/cpu/attention_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

std::atomic<size_t> g_workspace_bytes{0};

// ---- validation and output-shape inference ----
cpu::AttentionParams validate(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  check_float(q, "attention", "q");
  check_float(k, "attention", "k");
  check_float(v, "attention", "v");
  check_same_dtype(q, k, "attention");
  check_same_dtype(q, v, "attention");
  LMLAB_CHECK(q.dim() == 4, ShapeError, "[attention] q must be [B, Hq, T, D], got ", shape_str(q.shape()));
  LMLAB_CHECK(k.dim() == 4, ShapeError, "[attention] k must be [B, Hkv, S, D], got ", shape_str(k.shape()));
  LMLAB_CHECK(v.dim() == 4, ShapeError, "[attention] v must be [B, Hkv, S, Dv], got ", shape_str(v.shape()));
  cpu::AttentionParams p;
  p.B = q.size(0);
  p.Hq = q.size(1);
  p.T = q.size(2);
  p.D = q.size(3);
  p.Hkv = k.size(1);
  p.S = k.size(2);
  p.Dv = v.size(3);
  LMLAB_CHECK(k.size(0) == p.B && v.size(0) == p.B, ShapeError, "[attention] batch sizes differ: q ",
              shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  LMLAB_CHECK(k.size(3) == p.D, ShapeError, "[attention] head dim D of q and k differ: q ", shape_str(q.shape()),
              ", k ", shape_str(k.shape()));
  LMLAB_CHECK(v.size(1) == p.Hkv && v.size(2) == p.S, ShapeError,
              "[attention] k [B, Hkv, S, D] and v [B, Hkv, S, Dv] disagree on Hkv or S: k ", shape_str(k.shape()),
              ", v ", shape_str(v.shape()));
  LMLAB_CHECK(p.Hkv > 0 && p.Hq % p.Hkv == 0, ShapeError, "[attention] query heads Hq=", p.Hq,
              " must be a multiple of kv heads Hkv=", p.Hkv, " (q ", shape_str(q.shape()), ", k ",
              shape_str(k.shape()), ")");
  LMLAB_CHECK(p.D > 0 && p.Dv > 0, ShapeError, "[attention] head dims must be positive: q ", shape_str(q.shape()),
              ", v ", shape_str(v.shape()));
  LMLAB_CHECK(opt.window >= 0, ValueError, "[attention] window must be >= 0 (0 = unlimited), got ", opt.window);
  LMLAB_CHECK(opt.window == 0 || opt.causal, ValueError,
              "[attention] a sliding window (window=", opt.window, ") needs causal=true");
  LMLAB_CHECK(std::isfinite(opt.scale), ValueError, "[attention] scale must be finite, got ", opt.scale);
  p.causal = opt.causal;
  p.window = opt.window;
  p.scale = opt.scale != 0.0 ? opt.scale : 1.0 / std::sqrt(double(p.D));
  if (opt.mask.defined()) {
    const Tensor& m = opt.mask;
    check_float(m, "attention", "mask");
    check_same_dtype(q, m, "attention");
    Shape full = {p.B, p.Hq, p.T, p.S};
    bool ok = m.dim() <= 4;
    for (int64_t d = 1; ok && d <= m.dim(); ++d) {
      int64_t ms = m.size(-d), fs = full[size_t(4 - d)];
      ok = ms == fs || ms == 1;
    }
    LMLAB_CHECK(ok, ShapeError, "[attention] mask ", shape_str(m.shape()),
                " is not broadcastable to [B, Hq, T, S] = ", shape_str(full));
    Strides st = broadcast_strides(m.shape(), m.strides(), full);
    for (size_t d = 0; d < 4; ++d) p.mask_strides[d] = st[d];
    p.mask = m.detach();
  }
  return p;
}

// ---- reference kernels ----
// Element (b, h, i, d) of a strided rank-4 tensor.
struct View4 {
  const void* base;
  int64_t s[4];
  explicit View4(const Tensor& t) : base(t.raw_data()) {
    for (int d = 0; d < 4; ++d) s[d] = t.stride(d);
  }
  template <class T>
  double at(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return double(static_cast<const T*>(base)[a * s[0] + b * s[1] + c * s[2] + d * s[3]]);
  }
};

// Scores of query (b, h, i) against all keys into s [S] (hidden keys -inf); returns the row max.
template <class T>
double score_row_ref(const View4& Q, const View4& K, const cpu::AttentionParams& p, int64_t b, int64_t h, int64_t i,
                     std::vector<double>& s) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const T* mp = p.mask.defined() ? static_cast<const T*>(p.mask.raw_data()) : nullptr;
  int64_t kvh = h / p.group();
  double m = ninf;
  for (int64_t j = 0; j < p.S; ++j) {
    if (!p.visible(i, j)) {
      s[size_t(j)] = ninf;
      continue;
    }
    double acc = 0;
    for (int64_t d = 0; d < p.D; ++d) acc += Q.at<T>(b, h, i, d) * K.at<T>(b, kvh, j, d);
    acc *= p.scale;
    if (mp)
      acc += double(mp[b * p.mask_strides[0] + h * p.mask_strides[1] + i * p.mask_strides[2] + j * p.mask_strides[3]]);
    s[size_t(j)] = acc;
    m = std::max(m, acc);
  }
  return m;
}

// out [B, Hq, T, Dv] = softmax(scale q k^T + mask) v per query row; lse [B, Hq, T] = log sum exp of the row.
template <class T>
void attention_forward_ref(const Tensor& q, const Tensor& k, const Tensor& v, const cpu::AttentionParams& p,
                           Tensor& out, Tensor& lse) {
  View4 Q(q), K(k), V(v);
  T* o = out.data<T>();
  T* L = lse.data<T>();
  std::vector<double> s(size_t(p.S)), acc(size_t(p.Dv));
  g_workspace_bytes = (s.size() + acc.size()) * sizeof(double);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.Hq; ++h)
      for (int64_t i = 0; i < p.T; ++i) {
        int64_t kvh = h / p.group(), row = (b * p.Hq + h) * p.T + i;
        double m = score_row_ref<T>(Q, K, p, b, h, i, s);
        std::fill(acc.begin(), acc.end(), 0.0);
        if (m == -std::numeric_limits<double>::infinity()) {  // no visible key: output 0
          for (int64_t e = 0; e < p.Dv; ++e) o[row * p.Dv + e] = T(0);
          L[row] = T(m);
          continue;
        }
        double l = 0;
        for (int64_t j = 0; j < p.S; ++j) {
          double pj = std::exp(s[size_t(j)] - m);
          l += pj;
          for (int64_t e = 0; e < p.Dv; ++e) acc[size_t(e)] += pj * V.at<T>(b, kvh, j, e);
        }
        for (int64_t e = 0; e < p.Dv; ++e) o[row * p.Dv + e] = T(acc[size_t(e)] / l);
        L[row] = T(m + std::log(l));
      }
}

// Gradients of q, k, v (and the mask when `mask_grad`) from dO: for each query row recompute
// P = softmax(s), dP = dO v^T, dS = P (dP - sum(P dP)); dq += scale dS k, dk += scale dS q, dv += P dO.
template <class T>
std::vector<Tensor> attention_backward_ref(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                           const cpu::AttentionParams& p, bool mask_grad) {
  View4 Q(q), K(k), V(v), G(g);
  const double ninf = -std::numeric_limits<double>::infinity();
  std::vector<double> dq(size_t(q.numel())), dk(size_t(k.numel())), dv(size_t(v.numel()));
  std::vector<double> s(size_t(p.S)), dp(size_t(p.S));
  // dmask is accumulated in the mask's own (contiguous) shape: broadcast dims sum.
  std::vector<double> dm;
  int64_t dms[4] = {0, 0, 0, 0};
  if (mask_grad) {
    dm.assign(size_t(p.mask.numel()), 0.0);
    Strides st = broadcast_strides(p.mask.shape(), contiguous_strides(p.mask.shape()), {p.B, p.Hq, p.T, p.S});
    for (size_t d = 0; d < 4; ++d) dms[d] = st[d];
  }
  g_workspace_bytes = (dq.size() + dk.size() + dv.size() + s.size() + dp.size() + dm.size()) * sizeof(double);
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.Hq; ++h)
      for (int64_t i = 0; i < p.T; ++i) {
        int64_t kvh = h / p.group();
        double m = score_row_ref<T>(Q, K, p, b, h, i, s);
        if (m == ninf) continue;  // row saw no key: zero gradient
        double l = 0;
        for (int64_t j = 0; j < p.S; ++j) l += std::exp(s[size_t(j)] - m);
        double di = 0;
        for (int64_t j = 0; j < p.S; ++j) {
          double pj = std::exp(s[size_t(j)] - m) / l;
          s[size_t(j)] = pj;
          double acc = 0;
          for (int64_t e = 0; e < p.Dv; ++e) acc += G.at<T>(b, h, i, e) * V.at<T>(b, kvh, j, e);
          dp[size_t(j)] = acc;
          di += pj * acc;
        }
        for (int64_t j = 0; j < p.S; ++j) {
          double pj = s[size_t(j)];
          if (pj == 0) continue;
          double ds = pj * (dp[size_t(j)] - di);
          if (mask_grad) dm[size_t(b * dms[0] + h * dms[1] + i * dms[2] + j * dms[3])] += ds;
          for (int64_t d = 0; d < p.D; ++d) {
            dq[size_t(((b * p.Hq + h) * p.T + i) * p.D + d)] += p.scale * ds * K.at<T>(b, kvh, j, d);
            dk[size_t(((b * p.Hkv + kvh) * p.S + j) * p.D + d)] += p.scale * ds * Q.at<T>(b, h, i, d);
          }
          for (int64_t e = 0; e < p.Dv; ++e)
            dv[size_t(((b * p.Hkv + kvh) * p.S + j) * p.Dv + e)] += pj * G.at<T>(b, h, i, e);
        }
      }
  auto to_tensor = [](const std::vector<double>& x, const Shape& shape) {
    Tensor t = Tensor::empty(shape, std::is_same_v<T, float> ? DType::F32 : DType::F64);
    T* o = t.data<T>();
    for (size_t n = 0; n < x.size(); ++n) o[n] = T(x[n]);
    return t;
  };
  return {to_tensor(dq, q.shape()), to_tensor(dk, k.shape()), to_tensor(dv, v.shape()),
          mask_grad ? to_tensor(dm, p.mask.shape()) : Tensor()};
}

}  // namespace

namespace cpu {
void set_attention_workspace_bytes(size_t bytes) { g_workspace_bytes = bytes; }
}  // namespace cpu

size_t attention_last_workspace_bytes() { return g_workspace_bytes; }

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt) {
  cpu::AttentionParams p = validate(q, k, v, opt);
  const cpu::AttentionBlocks blocks = cpu::attention_blocks();
  Tensor out, lse;
  std::vector<Tensor> inputs = {q, k, v, opt.mask};
  const bool needs_grad = GradMode::enabled() && any_requires_grad(inputs);
  // Decoding: a few queries over a cache view; no backward, so no logsumexp to keep.
  if (!reference_mode() && !needs_grad && cpu::attention_decode_supported(q, k, v, p))
    return cpu::attention_decode_forward(q, k, v, p, blocks);
  if (reference_mode()) {
    out = Tensor::empty({p.B, p.Hq, p.T, p.Dv}, q.dtype());
    lse = Tensor::empty({p.B, p.Hq, p.T}, q.dtype());
    LMLAB_DISPATCH_FLOAT(q.dtype(), "attention", [&] { attention_forward_ref<scalar_t>(q, k, v, p, out, lse); });
  } else {
    std::tie(out, lse) = cpu::attention_forward(q, k, v, p, blocks);
  }
  if (!needs_grad) return out;
  const bool mask_grad = opt.mask.defined() && opt.mask.requires_grad();
  Tensor mask = p.mask;
  p.mask = Tensor();  // the node keeps it in `saved`, which release() frees
  return record(out, "attention", inputs, {q.detach(), k.detach(), v.detach(), mask, out.detach(), lse},
                [p, blocks, mask_grad](const Tensor& g, const std::vector<Tensor>& s) {
                  cpu::AttentionParams pp = p;
                  pp.mask = s[3];
                  Tensor gg = g.dtype() == s[0].dtype() ? g : g.to(s[0].dtype());
                  // The fast backward has no mask gradient: the reference computes it when wanted.
                  if (reference_mode() || mask_grad) {
                    return LMLAB_DISPATCH_FLOAT(s[0].dtype(), "attention", [&] {
                      return attention_backward_ref<scalar_t>(s[0], s[1], s[2], gg, pp, mask_grad);
                    });
                  }
                  cpu::AttentionGrads gr = cpu::attention_backward(s[0], s[1], s[2], s[4], s[5], gg, pp, blocks);
                  return std::vector<Tensor>{gr.dq, gr.dk, gr.dv, Tensor()};
                });
}

}  // namespace lmlab
