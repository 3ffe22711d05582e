// Elementwise ops with NumPy/PyTorch broadcasting. Floating dtypes f32 and f64; both operands
// must have the same dtype (no implicit promotion: a mismatch is a DTypeError naming the op).
// Semantics follow torch.<name>; gelu(x, tanh) is torch.nn.functional.gelu(approximate="tanh").
#pragma once
#include <limits>

#include "lmlab/core/tensor.h"

namespace lmlab {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);  // a^b, a > 0 where b is not an integer
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor pow(const Tensor& a, double e);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);     // gradient sign(x), 0 at 0
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);    // x * sigmoid(x)
Tensor gelu(const Tensor& x, bool tanh_approx = false);
Tensor relu(const Tensor& x);    // gradient 0 at 0
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
// Clamps into [lo, hi]; pass +-infinity for a one-sided clamp. Gradient passes where lo <= x <= hi.
Tensor clamp(const Tensor& x, double lo, double hi);
// cond ? a : b, with cond of dtype u8 (nonzero = true), all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` where mask (u8, broadcastable to x) is nonzero.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// Sums `g` down to `shape` over broadcast dims (the adjoint of broadcasting).
Tensor sum_to(const Tensor& g, const Shape& shape);
// Elementwise comparison producing u8 (not differentiable).
Tensor gt(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add(a, -s); }
inline Tensor operator-(double s, const Tensor& a) { return add(neg(a), s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul(a, 1.0 / s); }

// In-place updates for optimizers and initialisers; refuse tensors that are recording grad.
void add_(const Tensor& x, const Tensor& y, double alpha = 1.0);  // x += alpha * y
void mul_(const Tensor& x, double s);
void fill_(const Tensor& x, double v);
void copy_(const Tensor& dst, const Tensor& src);

}  // namespace lmlab
