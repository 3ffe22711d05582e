// The gated delta rule family: validation, the reference recurrence (forward and its reverse-time
// backward, `_ref` style: plain loops, a double state, no BLAS), autograd wiring and the dispatch
// between the recurrent, chunked and step forms. Spec: shared/papers/kimi-linear.md ("Per-step
// recurrence"); fla `fla/ops/kda/naive.py` (naive_recurrent_kda). Derivations: README.md here.
#include "lmlab/ops/delta_rule/delta_rule.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "lmlab/ops/delta_rule/delta_rule_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;
using cpu::DeltaGate;
using cpu::DeltaRuleParams;

namespace {

// ---- validation and output-shape inference ----
DeltaRuleParams validate(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                         const Tensor& beta, const Tensor& h0, const DeltaRuleOptions& opt) {
  check_float(q, op, "q");
  check_float(k, op, "k");
  check_float(v, op, "v");
  check_float(beta, op, "beta");
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  check_same_dtype(q, beta, op);
  LMLAB_CHECK(q.dim() == 4, ShapeError, "[", op, "] q must be [B, T, H, dk], got ", shape_str(q.shape()));
  DeltaRuleParams p;
  p.B = q.size(0);
  p.T = q.size(1);
  p.H = q.size(2);
  p.dk = q.size(3);
  LMLAB_CHECK(p.B > 0 && p.H > 0 && p.dk > 0, ShapeError, "[", op, "] q [B, T, H, dk] needs B, H, dk > 0, got ",
              shape_str(q.shape()));
  LMLAB_CHECK(k.shape() == q.shape(), ShapeError, "[", op, "] k must have the shape of q [B, T, H, dk] = ",
              shape_str(q.shape()), ", got ", shape_str(k.shape()));
  LMLAB_CHECK(v.dim() == 4 && v.size(0) == p.B && v.size(1) == p.T && v.size(2) == p.H && v.size(3) > 0, ShapeError,
              "[", op, "] v must be [B, T, H, dv] with B, T, H of q ", shape_str(q.shape()), ", got ",
              shape_str(v.shape()));
  p.dv = v.size(3);
  const Shape bth = {p.B, p.T, p.H};
  LMLAB_CHECK(beta.shape() == bth, ShapeError, "[", op, "] beta must be [B, T, H] = ", shape_str(bth), ", got ",
              shape_str(beta.shape()));
  if (g.defined()) {
    check_float(g, op, "g");
    check_same_dtype(q, g, op);
    if (g.shape() == q.shape()) p.gate = DeltaGate::Channel;
    else if (g.shape() == bth) p.gate = DeltaGate::Scalar;
    else
      LMLAB_CHECK(false, ShapeError, "[", op, "] g must be [B, T, H, dk] = ", shape_str(q.shape()),
                  " (channel gate) or [B, T, H] = ", shape_str(bth), " (scalar gate), got ", shape_str(g.shape()));
  }
  if (h0.defined()) {
    check_float(h0, op, "initial_state");
    check_same_dtype(q, h0, op);
    const Shape hs = {p.B, p.H, p.dk, p.dv};
    LMLAB_CHECK(h0.shape() == hs, ShapeError, "[", op, "] initial_state must be [B, H, dk, dv] = ", shape_str(hs),
                ", got ", shape_str(h0.shape()));
  }
  LMLAB_CHECK(std::isfinite(opt.scale), ValueError, "[", op, "] scale must be finite, got ", opt.scale);
  p.scale = opt.scale != 0.0 ? opt.scale : 1.0 / std::sqrt(double(p.dk));
  LMLAB_CHECK(opt.chunk_size >= 1, ValueError, "[", op, "] chunk_size must be >= 1, got ", opt.chunk_size);
  p.chunk = opt.chunk_size;
  return p;
}

// ---- reference kernels ----
// Per (b, h), per token t (README.md, "Recurrence"); o / hT may be null (the backward replays the
// forward only for `states`, S_0..S_T):
//   a = exp(g_t); S' = Diag(a) S; r = v_t - S'^T k_t; S = S' + beta_t k_t r^T; o_t = S^T (scale q_t).
template <class T>
void forward_pair_ref(const DeltaRuleParams& p, const cpu::DeltaInputs<T>& in, int64_t b, int64_t h, T* o, T* hT,
                      std::vector<double>* states) {
  const int64_t dk = p.dk, dv = p.dv;
  std::vector<double> S(static_cast<size_t>(dk * dv), 0.0), pred(static_cast<size_t>(dv));
  if (in.h0)
    for (int64_t n = 0; n < dk * dv; ++n) S[size_t(n)] = double(in.h0[p.state_off(b, h) + n]);
  if (states) std::copy(S.begin(), S.end(), states->begin());
  for (int64_t t = 0; t < p.T; ++t) {
    const T* q = in.q + p.qk_off(b, t, h);
    const T* k = in.k + p.qk_off(b, t, h);
    const T* v = in.v + p.v_off(b, t, h);
    const double bt = double(in.beta[p.bt_off(b, t, h)]);
    std::fill(pred.begin(), pred.end(), 0.0);
    for (int64_t c = 0; c < dk; ++c) {
      const double a = std::exp(cpu::gate_at(p, in.g, b, t, h, c));
      for (int64_t j = 0; j < dv; ++j) {
        S[size_t(c * dv + j)] *= a;
        pred[size_t(j)] += S[size_t(c * dv + j)] * double(k[c]);
      }
    }
    for (int64_t c = 0; c < dk; ++c)
      for (int64_t j = 0; j < dv; ++j) S[size_t(c * dv + j)] += bt * double(k[c]) * (double(v[j]) - pred[size_t(j)]);
    T* out = o ? o + p.v_off(b, t, h) : nullptr;
    for (int64_t j = 0; out && j < dv; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < dk; ++c) acc += S[size_t(c * dv + j)] * p.scale * double(q[c]);
      out[j] = T(acc);
    }
    if (states) std::copy(S.begin(), S.end(), states->begin() + (t + 1) * dk * dv);
  }
  if (hT)
    for (int64_t n = 0; n < dk * dv; ++n) hT[p.state_off(b, h) + n] = T(S[size_t(n)]);
}

// Reverse-time recurrence over the stored states S_0..S_T (README.md, "Backward of the recurrence").
// dS holds dL/dS_t on entry to step t:
//   dS += scale q dO^T;  dq = scale S_t dO
//   kS = dS^T k;  dr = beta kS;  dbeta = kS . r;  dk = beta dS r - S' dr;  dv = dr
//   dS' = dS - k dr^T;  dg_c = sum_j dS'[c, j] S'[c, j];  dS_{t-1} = Diag(a) dS'
template <class T>
void backward_pair_ref(const DeltaRuleParams& p, const cpu::DeltaInputs<T>& in, const T* dO, const T* dhT,
                       const cpu::DeltaGrads<T>& gr, int64_t b, int64_t h) {
  const int64_t dk = p.dk, dv = p.dv, n = dk * dv;
  std::vector<double> states(size_t((p.T + 1) * n));
  forward_pair_ref<T>(p, in, b, h, nullptr, nullptr, &states);
  std::vector<double> dS(static_cast<size_t>(n), 0.0), Sp(static_cast<size_t>(n));
  std::vector<double> a(static_cast<size_t>(dk)), r(static_cast<size_t>(dv)), kS(static_cast<size_t>(dv));
  if (dhT)
    for (int64_t i = 0; i < n; ++i) dS[size_t(i)] = double(dhT[p.state_off(b, h) + i]);
  for (int64_t t = p.T - 1; t >= 0; --t) {
    const double* Sprev = states.data() + t * n;
    const double* St = states.data() + (t + 1) * n;
    const T* q = in.q + p.qk_off(b, t, h);
    const T* k = in.k + p.qk_off(b, t, h);
    const T* v = in.v + p.v_off(b, t, h);
    const T* d = dO + p.v_off(b, t, h);
    const double bt = double(in.beta[p.bt_off(b, t, h)]);
    for (int64_t c = 0; c < dk; ++c) {
      a[size_t(c)] = std::exp(cpu::gate_at(p, in.g, b, t, h, c));
      for (int64_t j = 0; j < dv; ++j) Sp[size_t(c * dv + j)] = a[size_t(c)] * Sprev[c * dv + j];
    }
    for (int64_t j = 0; j < dv; ++j) {
      double pred = 0;
      for (int64_t c = 0; c < dk; ++c) pred += Sp[size_t(c * dv + j)] * double(k[c]);
      r[size_t(j)] = double(v[j]) - pred;
    }
    for (int64_t c = 0; c < dk; ++c) {
      double dq = 0;
      for (int64_t j = 0; j < dv; ++j) {
        dS[size_t(c * dv + j)] += p.scale * double(q[c]) * double(d[j]);
        dq += St[c * dv + j] * double(d[j]);
      }
      if (gr.dq) gr.dq[p.qk_off(b, t, h) + c] = T(p.scale * dq);
    }
    double dbeta = 0;
    for (int64_t j = 0; j < dv; ++j) {
      double acc = 0;
      for (int64_t c = 0; c < dk; ++c) acc += dS[size_t(c * dv + j)] * double(k[c]);
      kS[size_t(j)] = acc;
      dbeta += acc * r[size_t(j)];
      if (gr.dv) gr.dv[p.v_off(b, t, h) + j] = T(bt * acc);
    }
    if (gr.dbeta) gr.dbeta[p.bt_off(b, t, h)] = T(dbeta);
    double dg_scalar = 0;
    for (int64_t c = 0; c < dk; ++c) {
      double dkc = 0, dgc = 0;
      for (int64_t j = 0; j < dv; ++j) {
        const double dr = bt * kS[size_t(j)];
        dkc += bt * dS[size_t(c * dv + j)] * r[size_t(j)] - Sp[size_t(c * dv + j)] * dr;
        const double dSp = dS[size_t(c * dv + j)] - double(k[c]) * dr;
        dgc += dSp * Sp[size_t(c * dv + j)];
        dS[size_t(c * dv + j)] = a[size_t(c)] * dSp;
      }
      if (gr.dk) gr.dk[p.qk_off(b, t, h) + c] = T(dkc);
      if (p.gate == DeltaGate::Channel && gr.dg) gr.dg[p.qk_off(b, t, h) + c] = T(dgc);
      dg_scalar += dgc;
    }
    if (p.gate == DeltaGate::Scalar && gr.dg) gr.dg[p.bt_off(b, t, h)] = T(dg_scalar);
  }
  if (gr.dh0)
    for (int64_t i = 0; i < n; ++i) gr.dh0[p.state_off(b, h) + i] = T(dS[size_t(i)]);
}

template <class F>
void for_pairs(const DeltaRuleParams& p, bool parallel, F&& fn) {
  auto body = [&](int64_t lo, int64_t hi) {
    for (int64_t bh = lo; bh < hi; ++bh) fn(bh / p.H, bh % p.H);
  };
  // About 10 T dk dv flops per pair: tiny problems (gradchecks) stay on one thread.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, p.T * p.dk * p.dv));
  if (parallel) parallel_for(0, p.B * p.H, grain, body);
  else body(0, p.B * p.H);
}

}  // namespace

namespace cpu {

template <class T>
void delta_rule_recurrent_forward_ref(const DeltaRuleParams& p, const DeltaInputs<T>& in, T* o, T* hT,
                                      bool parallel) {
  for_pairs(p, parallel, [&](int64_t b, int64_t h) { forward_pair_ref(p, in, b, h, o, hT, nullptr); });
}

template <class T>
void delta_rule_recurrent_backward_ref(const DeltaRuleParams& p, const DeltaInputs<T>& in, const T* dO,
                                       const T* dhT, const DeltaGrads<T>& gr, bool parallel) {
  for_pairs(p, parallel, [&](int64_t b, int64_t h) { backward_pair_ref(p, in, dO, dhT, gr, b, h); });
}

template void delta_rule_recurrent_forward_ref<float>(const DeltaRuleParams&, const DeltaInputs<float>&, float*,
                                                      float*, bool);
template void delta_rule_recurrent_forward_ref<double>(const DeltaRuleParams&, const DeltaInputs<double>&, double*,
                                                       double*, bool);
template void delta_rule_recurrent_backward_ref<float>(const DeltaRuleParams&, const DeltaInputs<float>&,
                                                       const float*, const float*, const DeltaGrads<float>&, bool);
template void delta_rule_recurrent_backward_ref<double>(const DeltaRuleParams&, const DeltaInputs<double>&,
                                                        const double*, const double*, const DeltaGrads<double>&,
                                                        bool);

}  // namespace cpu

namespace {

// ---- autograd wiring ----
template <class T>
cpu::DeltaInputs<T> inputs_of(const std::vector<Tensor>& s) {
  auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : static_cast<T*>(nullptr); };
  return {ptr(s[0]), ptr(s[1]), ptr(s[2]), ptr(s[3]), ptr(s[4]), ptr(s[5])};
}

// One node for both outputs: the kernels write o and the final state into one flat buffer
// [B*T*H*dv + B*H*dk*dv] that is recorded, and o / final_state are views of it, so a gradient
// reaching either (or both) arrives in the one backward.
DeltaRuleResult run(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                    const Tensor& beta, const Tensor& h0, const DeltaRuleOptions& opt, bool chunked) {
  DeltaRuleParams p = validate(op, q, k, v, g, beta, h0, opt);
  chunked = chunked && !reference_mode();
  const bool parallel = !reference_mode();
  const std::vector<Tensor> inputs = {q, k, v, g, beta, h0};
  const bool needs_grad = GradMode::enabled() && any_requires_grad(inputs);
  std::vector<Tensor> saved;
  for (const Tensor& t : inputs) saved.push_back(t.defined() ? contig(t.detach()) : Tensor());
  const int64_t n_o = p.B * p.T * p.H * p.dv, n_s = p.B * p.H * p.dk * p.dv;
  const DType dt = q.dtype();
  Tensor packed = Tensor::empty({n_o + n_s}, dt);
  Tensor chunk_states;
  if (chunked && needs_grad) chunk_states = Tensor::empty({p.B, p.H, p.n_chunks(), p.dk, p.dv}, dt);
  LMLAB_DISPATCH_FLOAT(dt, op, [&] {
    auto in = inputs_of<scalar_t>(saved);
    scalar_t* o = packed.data<scalar_t>();
    if (chunked)
      cpu::delta_rule_chunked_forward<scalar_t>(p, in, o, o + n_o,
                                                chunk_states.defined() ? chunk_states.data<scalar_t>() : nullptr);
    else
      cpu::delta_rule_recurrent_forward_ref<scalar_t>(p, in, o, o + n_o, parallel);
  });
  if (needs_grad) {
    saved.push_back(chunk_states);
    packed = record(packed, "gated_delta_rule", inputs, saved,
                    [p, chunked, parallel, n_o](const Tensor& grad, const std::vector<Tensor>& s) {
                      Tensor gg = contig(grad.dtype() == s[0].dtype() ? grad : grad.to(s[0].dtype()));
                      std::vector<Tensor> grads(6);
                      for (size_t i = 0; i < 6; ++i)
                        if (s[i].defined()) grads[i] = Tensor::empty(s[i].shape(), s[i].dtype());
                      LMLAB_DISPATCH_FLOAT(s[0].dtype(), "gated_delta_rule", [&] {
                        auto in = inputs_of<scalar_t>(s);
                        auto gp = [&](size_t i) {
                          return grads[i].defined() ? grads[i].data<scalar_t>() : static_cast<scalar_t*>(nullptr);
                        };
                        cpu::DeltaGrads<scalar_t> gr{gp(0), gp(1), gp(2), gp(3), gp(4), gp(5)};
                        const scalar_t* dO = gg.data<scalar_t>();
                        if (chunked)
                          cpu::delta_rule_chunked_backward<scalar_t>(p, in, s[6].data<scalar_t>(), dO, dO + n_o, gr);
                        else
                          cpu::delta_rule_recurrent_backward_ref<scalar_t>(p, in, dO, dO + n_o, gr, parallel);
                      });
                      return grads;
                    });
  }
  DeltaRuleResult r;
  r.o = packed.narrow(0, 0, n_o).view({p.B, p.T, p.H, p.dv});
  r.final_state = packed.narrow(0, n_o, n_s).view({p.B, p.H, p.dk, p.dv});
  return r;
}

}  // namespace

DeltaRuleResult gated_delta_rule_recurrent(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                           const Tensor& beta, const Tensor& initial_state,
                                           const DeltaRuleOptions& opt) {
  return run("gated_delta_rule_recurrent", q, k, v, g, beta, initial_state, opt, false);
}

DeltaRuleResult gated_delta_rule_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                         const Tensor& beta, const Tensor& initial_state, const DeltaRuleOptions& opt) {
  return run("gated_delta_rule_chunked", q, k, v, g, beta, initial_state, opt, true);
}

DeltaRuleResult gated_delta_rule(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                 const Tensor& beta, const Tensor& initial_state, const DeltaRuleOptions& opt) {
  using Impl = DeltaRuleOptions::Impl;
  bool chunked = opt.impl == Impl::Chunked;
  if (opt.impl == Impl::Auto) chunked = q.defined() && q.dim() == 4 && q.size(1) >= kDeltaRuleChunkedMinT;
  return run("gated_delta_rule", q, k, v, g, beta, initial_state, opt, chunked);
}

DeltaRuleResult gated_delta_rule_step(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                      const Tensor& beta, const Tensor& state, const DeltaRuleOptions& opt) {
  const char* op = "gated_delta_rule_step";
  DeltaRuleParams p = validate(op, q, k, v, g, beta, state, opt);
  LMLAB_CHECK(!(GradMode::enabled() && any_requires_grad({q, k, v, g, beta, state})), AutogradError, "[", op,
              "] records no gradient: call it under NoGrad, or use gated_delta_rule for training");
  const bool in_place = state.defined() && state.is_contiguous();
  Tensor S = in_place ? state : Tensor::zeros({p.B, p.H, p.dk, p.dv}, q.dtype());
  if (state.defined() && !in_place) copy_into(S, state);
  const Tensor qc = contig(q), kc = contig(k), vc = contig(v), bc = contig(beta);
  const Tensor gc = g.defined() ? contig(g) : Tensor();
  DeltaRuleResult r;
  r.o = Tensor::empty({p.B, p.T, p.H, p.dv}, q.dtype());
  LMLAB_DISPATCH_FLOAT(q.dtype(), op, [&] {
    using T = scalar_t;
    cpu::DeltaInputs<T> in{qc.data<T>(), kc.data<T>(), vc.data<T>(), gc.defined() ? gc.data<T>() : nullptr,
                           bc.data<T>(), nullptr};
    if (reference_mode()) {
      // The reference reads h0 and writes hT separately, so run it on a copy and write back.
      Tensor h0 = S.clone();
      in.h0 = h0.data<T>();
      cpu::delta_rule_recurrent_forward_ref<T>(p, in, r.o.data<T>(), S.data<T>(), false);
    } else {
      cpu::delta_rule_step_forward<T>(p, in, S.data<T>(), r.o.data<T>());
    }
  });
  r.final_state = S;
  return r;
}

}  // namespace lmlab
