// Kernels of the gated delta rule family (delta_rule.h), shared by delta_rule.cpp (validation,
// reference recurrence, autograd) and chunked.cpp / step.cpp (the fast forms). All kernels take
// contiguous buffers in the op's layout: q, k [B, T, H, dk], v [B, T, H, dv], g [B, T, H, dk]
// (Channel) or [B, T, H] (Scalar) or none, beta [B, T, H], states [B, H, dk, dv].
#pragma once
#include <cmath>
#include <cstdint>

namespace lmlab::cpu {

enum class DeltaGate { None, Scalar, Channel };

struct DeltaRuleParams {
  int64_t B = 0, T = 0, H = 0, dk = 0, dv = 0;
  DeltaGate gate = DeltaGate::None;
  double scale = 1.0;
  int64_t chunk = 64;

  // Offsets of token t of (b, h) in the [B, T, H, *] tensors.
  int64_t qk_off(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * dk; }
  int64_t v_off(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * dv; }
  int64_t bt_off(int64_t b, int64_t t, int64_t h) const { return (b * T + t) * H + h; }
  int64_t state_off(int64_t b, int64_t h) const { return (b * H + h) * dk * dv; }
  int64_t n_chunks() const { return (T + chunk - 1) / chunk; }
};

// Read-only inputs; g and h0 may be null (no gate / zero initial state).
template <class T>
struct DeltaInputs {
  const T *q, *k, *v, *g, *beta, *h0;
};
// Gradients of the inputs (each pointer may be null: not wanted). Written, not accumulated.
template <class T>
struct DeltaGrads {
  T *dq, *dk, *dv, *dg, *dbeta, *dh0;
};

// Reference recurrence (delta_rule.cpp): o [B, T, H, dv], hT [B, H, dk, dv]; `parallel` runs the
// (b, h) pairs on threads (the result is identical either way).
template <class T>
void delta_rule_recurrent_forward_ref(const DeltaRuleParams& p, const DeltaInputs<T>& in, T* o, T* hT,
                                      bool parallel);
// dO [B, T, H, dv] and dhT [B, H, dk, dv] (dhT may be null = zero).
template <class T>
void delta_rule_recurrent_backward_ref(const DeltaRuleParams& p, const DeltaInputs<T>& in, const T* dO,
                                       const T* dhT, const DeltaGrads<T>& gr, bool parallel);

// Chunked forward (chunked.cpp). `chunk_states` [B, H, n_chunks, dk, dv] receives the state at the
// start of every chunk (what the backward needs); may be null for inference.
template <class T>
void delta_rule_chunked_forward(const DeltaRuleParams& p, const DeltaInputs<T>& in, T* o, T* hT, T* chunk_states);
template <class T>
void delta_rule_chunked_backward(const DeltaRuleParams& p, const DeltaInputs<T>& in, const T* chunk_states,
                                 const T* dO, const T* dhT, const DeltaGrads<T>& gr);

// Decode kernel (step.cpp): advances `state` [B, H, dk, dv] in place over the T tokens, o [B, T, H, dv].
template <class T>
void delta_rule_step_forward(const DeltaRuleParams& p, const DeltaInputs<T>& in, T* state, T* o);

// Gate value of (b, t, h) for key channel c, in log space (0 when there is no gate).
template <class T>
inline double gate_at(const DeltaRuleParams& p, const T* g, int64_t b, int64_t t, int64_t h, int64_t c) {
  switch (p.gate) {
    case DeltaGate::Channel: return double(g[p.qk_off(b, t, h) + c]);
    case DeltaGate::Scalar: return double(g[p.bt_off(b, t, h)]);
    default: return 0.0;
  }
}

}  // namespace lmlab::cpu
