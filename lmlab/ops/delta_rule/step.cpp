// The per-token decode kernel of the gated delta rule (fla `fused_recurrent.py`'s role): the state
// [dk, dv] of each (b, h) stays in the caller's buffer and is updated in place, two passes over it
// per token in the input precision, rows of dv contiguous so the inner loops vectorise.
#include <algorithm>
#include <cmath>
#include <vector>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/delta_rule/delta_rule_kernels.h"

namespace lmlab::cpu {

template <class T>
void delta_rule_step_forward(const DeltaRuleParams& p, const DeltaInputs<T>& in, T* state, T* o) {
  const int64_t dk = p.dk, dv = p.dv;
  // A (b, h) pair is about 4 dk dv flops per token: group pairs so a thread gets >= ~64k flops.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dk * dv * p.T));
  parallel_for(0, p.B * p.H, grain, [&](int64_t lo, int64_t hi) {
    std::vector<T> pred(static_cast<size_t>(dv)), err(static_cast<size_t>(dv)), acc(static_cast<size_t>(dv));
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / p.H, h = bh % p.H;
      T* S = state + p.state_off(b, h);
      for (int64_t t = 0; t < p.T; ++t) {
        const T* q = in.q + p.qk_off(b, t, h);
        const T* k = in.k + p.qk_off(b, t, h);
        const T* v = in.v + p.v_off(b, t, h);
        const T bt = in.beta[p.bt_off(b, t, h)];
        // Pass 1: decay each row and accumulate the prediction S'^T k against the decayed state.
        std::fill(pred.begin(), pred.end(), T(0));
        const T scalar_a = p.gate == DeltaGate::Scalar ? T(std::exp(in.g[p.bt_off(b, t, h)])) : T(1);
        for (int64_t c = 0; c < dk; ++c) {
          const T a = p.gate == DeltaGate::Channel ? T(std::exp(in.g[p.qk_off(b, t, h) + c])) : scalar_a;
          const T kc = k[c];
          T* row = S + c * dv;
          for (int64_t j = 0; j < dv; ++j) {
            row[j] *= a;
            pred[size_t(j)] += row[j] * kc;
          }
        }
        for (int64_t j = 0; j < dv; ++j) err[size_t(j)] = bt * (v[j] - pred[size_t(j)]);
        // Pass 2: rank-1 correction and the output read from the updated rows.
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t c = 0; c < dk; ++c) {
          const T kc = k[c], qc = T(p.scale) * q[c];
          T* row = S + c * dv;
          for (int64_t j = 0; j < dv; ++j) {
            row[j] += kc * err[size_t(j)];
            acc[size_t(j)] += qc * row[j];
          }
        }
        T* out = o + p.v_off(b, t, h);
        for (int64_t j = 0; j < dv; ++j) out[j] = acc[size_t(j)];
      }
    }
  });
}

template void delta_rule_step_forward<float>(const DeltaRuleParams&, const DeltaInputs<float>&, float*, float*);
template void delta_rule_step_forward<double>(const DeltaRuleParams&, const DeltaInputs<double>&, double*, double*);

}  // namespace lmlab::cpu
