// SwiGLU gate silu(gate) * up (Shazeer 2020; the FFN of LLaMA-style models): validation with
// broadcasting, `_ref` kernels (double, sequential, strided) and autograd wiring to the fused
// backward (fast kernels in ops/cpu/swiglu.cpp). Gradients of broadcast inputs are reduced with sum_to.
#include "lmlab/ops/swiglu.h"

#include <cmath>

#include "lmlab/ops/cpu/swiglu_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/elementwise.h"

namespace lmlab {

using namespace detail;

namespace {

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// ---- reference kernels: walk the broadcast output `s` by logical index ----
template <class S>
void swiglu_forward_ref(const Tensor& gate, const Tensor& up, const Shape& s, S* y) {
  const S* gp = static_cast<const S*>(gate.raw_data());
  const S* up_p = static_cast<const S*>(up.raw_data());
  Strides sg = broadcast_strides(gate.shape(), gate.strides(), s);
  Strides su = broadcast_strides(up.shape(), up.strides(), s);
  for (int64_t i = 0; i < numel_of(s); ++i) {
    double a = gp[offset_of(i, s, sg)], b = up_p[offset_of(i, s, su)];
    y[i] = S(a * sigmoid_ref(a) * b);
  }
}

template <class S>
void swiglu_backward_ref(const S* g, const Tensor& gate, const Tensor& up, const Shape& s, S* dgate, S* dup) {
  const S* gp = static_cast<const S*>(gate.raw_data());
  const S* up_p = static_cast<const S*>(up.raw_data());
  Strides sg = broadcast_strides(gate.shape(), gate.strides(), s);
  Strides su = broadcast_strides(up.shape(), up.strides(), s);
  for (int64_t i = 0; i < numel_of(s); ++i) {
    double a = gp[offset_of(i, s, sg)], b = up_p[offset_of(i, s, su)], sa = sigmoid_ref(a);
    if (dgate) dgate[i] = S(double(g[i]) * b * sa * (1 + a * (1 - sa)));
    if (dup) dup[i] = S(double(g[i]) * a * sa);
  }
}

// t broadcast to `s` and made contiguous (no autograd): the fast kernels take flat, equal-size operands.
Tensor expanded(const Tensor& t, const Shape& s) {
  if (t.shape() == s) return contig(t);
  return contig(t.as_strided(s, broadcast_strides(t.shape(), t.strides(), s), t.offset()));
}

template <class S>
S* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<S>() : nullptr;
}

// Gradients at the broadcast shape `s`, then summed back to each input's shape.
std::vector<Tensor> swiglu_backward(const Tensor& g, const Tensor& gate, const Tensor& up, const Shape& s,
                                    bool need_gate, bool need_up) {
  Tensor gc = contig(g);
  Tensor dgate = need_gate ? Tensor::empty(s, gate.dtype()) : Tensor();
  Tensor dup = need_up ? Tensor::empty(s, gate.dtype()) : Tensor();
  LMLAB_DISPATCH_FLOAT(gate.dtype(), "swiglu_backward", [&] {
    if (reference_mode()) {
      swiglu_backward_ref<scalar_t>(gc.data<scalar_t>(), gate, up, s, ptr_or_null<scalar_t>(dgate),
                                    ptr_or_null<scalar_t>(dup));
    } else {
      Tensor ge = expanded(gate, s), ue = expanded(up, s);
      cpu::swiglu_backward<scalar_t>(gc.data<scalar_t>(), ge.data<scalar_t>(), ue.data<scalar_t>(),
                                     ptr_or_null<scalar_t>(dgate), ptr_or_null<scalar_t>(dup), numel_of(s));
    }
  });
  return {need_gate ? sum_to(dgate, gate.shape()) : Tensor(), need_up ? sum_to(dup, up.shape()) : Tensor()};
}

}  // namespace

Tensor swiglu(const Tensor& gate, const Tensor& up) {
  check_float(gate, "swiglu", "gate");
  check_float(up, "swiglu", "up");
  check_same_dtype(gate, up, "swiglu");
  Shape s = broadcast_shapes(gate.shape(), up.shape(), "swiglu");
  Tensor y = Tensor::empty(s, gate.dtype());
  LMLAB_DISPATCH_FLOAT(gate.dtype(), "swiglu", [&] {
    if (reference_mode()) {
      swiglu_forward_ref<scalar_t>(gate, up, s, y.data<scalar_t>());
    } else {
      Tensor ge = expanded(gate, s), ue = expanded(up, s);
      cpu::swiglu_forward<scalar_t>(ge.data<scalar_t>(), ue.data<scalar_t>(), y.data<scalar_t>(), numel_of(s));
    }
  });
  bool need_gate = gate.requires_grad(), need_up = up.requires_grad();
  return record(y, "swiglu", {gate, up}, {gate.detach(), up.detach()},
                [s, need_gate, need_up](const Tensor& g, const std::vector<Tensor>& saved) {
                  return swiglu_backward(g, saved[0], saved[1], s, need_gate, need_up);
                });
}

}  // namespace lmlab
