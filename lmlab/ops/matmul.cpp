// matmul: validation, shape inference, reference kernel, autograd wiring. Kernels: ops/cpu/matmul.cpp.
#include "lmlab/ops/matmul.h"

#include "lmlab/ops/cpu/matmul_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/reduce.h"

namespace lmlab {

using namespace detail;

namespace {

// Reference: plain triple loop with double accumulation over broadcast batches.
Tensor matmul_ref(const Tensor& a, const Tensor& b, const Shape& batch, DType out_dt) {
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Shape ab = batch, bb = batch;
  ab.push_back(M); ab.push_back(K);
  bb.push_back(K); bb.push_back(N);
  Tensor ae = a.detach().expand(ab), be = b.detach().expand(bb);
  Tensor a64 = Tensor::empty(ab, DType::F64), b64 = Tensor::empty(bb, DType::F64);
  copy_into(a64, ae);
  copy_into(b64, be);
  int64_t nb = numel_of(batch);
  Tensor o64 = Tensor::empty(out_shape, DType::F64);
  const double* A = a64.data<double>();
  const double* B = b64.data<double>();
  double* O = o64.data<double>();
  for (int64_t z = 0; z < nb; ++z)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += A[z * M * K + i * K + k] * B[z * K * N + k * N + j];
        O[z * M * N + i * N + j] = acc;
      }
  Tensor out = Tensor::empty(out_shape, out_dt);
  copy_into(out, o64);
  return out;
}

Tensor matmul_nd(const Tensor& a, const Tensor& b, std::optional<DType> out_dtype) {
  LMLAB_CHECK(a.dim() >= 2 && b.dim() >= 2, ShapeError, "[matmul] internal: expected rank >= 2");
  LMLAB_CHECK(a.size(-1) == b.size(-2), ShapeError, "[matmul] inner dimensions differ: a ", shape_str(a.shape()),
              " @ b ", shape_str(b.shape()));
  Shape abatch(a.shape().begin(), a.shape().end() - 2), bbatch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(abatch, bbatch, "matmul");
  DType dt = a.dtype();
  DType out_dt = dt;
  if (dt == DType::BF16 && out_dtype) out_dt = *out_dtype;
  LMLAB_CHECK(out_dt == dt || (dt == DType::BF16 && out_dt == DType::F32), DTypeError,
              "[matmul] out_dtype ", dtype_name(out_dt), " unsupported for inputs of dtype ", dtype_name(dt));
  if (reference_mode()) return matmul_ref(a, b, batch, out_dt);
  return cpu::matmul_forward(a, b, batch, out_dt);
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in, std::optional<DType> out_dtype) {
  check_defined(a_in, "matmul", "a");
  check_defined(b_in, "matmul", "b");
  LMLAB_CHECK(a_in.dtype() == DType::F32 || a_in.dtype() == DType::F64 || a_in.dtype() == DType::BF16, DTypeError,
              "[matmul] unsupported dtype ", dtype_name(a_in.dtype()), ": expected f32, f64 or bf16");
  check_same_dtype(a_in, b_in, "matmul");
  LMLAB_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, ShapeError, "[matmul] operands must have rank >= 1, got ",
              shape_str(a_in.shape()), " and ", shape_str(b_in.shape()));
  bool a1 = a_in.dim() == 1, b1 = b_in.dim() == 1;
  Tensor a = a1 ? a_in.unsqueeze(0) : a_in;
  Tensor b = b1 ? b_in.unsqueeze(1) : b_in;
  Tensor out = matmul_nd(a, b, out_dtype);
  out = record(out, "matmul", {a, b}, {a.detach(), b.detach()},
               [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<Tensor>& s) {
                 const Tensor& A = s[0];
                 const Tensor& B = s[1];
                 Tensor gg = g.dtype() == A.dtype() ? g : g.to(A.dtype());
                 // bf16 operands: keep the f32 accumulator for the gradients (they flow on in f32).
                 std::optional<DType> od;
                 if (A.dtype() == DType::BF16) od = DType::F32;
                 Tensor ga = sum_to(matmul(gg, B.transpose(-1, -2), od), sa);
                 Tensor gb = sum_to(matmul(A.transpose(-1, -2), gg, od), sb);
                 return std::vector<Tensor>{ga, gb};
               });
  if (a1) out = out.squeeze(-2);
  if (b1) out = out.squeeze(-1);
  return out;
}

namespace {
thread_local bool g_autocast = false;
}
bool autocast_bf16() { return g_autocast; }
AutocastBF16::AutocastBF16(bool on) : prev_(g_autocast) { g_autocast = on; }
AutocastBF16::~AutocastBF16() { g_autocast = prev_; }

namespace {
// f32 -> bf16 copy, outside the graph (the autocast node below owns the gradient).
Tensor to_bf16_raw(const Tensor& t) {
  Tensor c = Tensor::empty(t.shape(), DType::BF16);
  copy_into(c, t);
  return c;
}

// Autocast linear, one graph node: y = bf16(x) bf16(W)^T with f32 accumulation and output. The
// backward rounds the incoming gradient to bf16 once and runs both products on it: dx = g W and
// dW = g^T x, the latter written [N, K] like W, so the weight gradient is not a transposed view
// that the engine would have to copy (as matmul over W^T and two casts would leave it).
Tensor linear_autocast(const Tensor& x2, const Tensor& w) {
  Tensor xb = to_bf16_raw(x2), wb = to_bf16_raw(w);
  Tensor y = cpu::matmul_forward(xb, wb.transpose(0, 1), {}, DType::F32);  // [R, N]
  return record(y, "linear_bf16", {x2, w}, {xb, wb}, [](const Tensor& g, const std::vector<Tensor>& s) {
    Tensor gb = to_bf16_raw(g);                                                      // [R, N]
    Tensor dx = cpu::matmul_forward(gb, s[1], {}, DType::F32);                       // [R, K]
    Tensor dw = cpu::matmul_forward(gb.transpose(0, 1), s[0], {}, DType::F32);       // [N, K]
    return std::vector<Tensor>{dx, dw};
  });
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_defined(x, "linear", "x");
  check_defined(w, "linear", "w");
  LMLAB_CHECK(w.dim() == 2, ShapeError, "[linear] weight must be [N, K], got ", shape_str(w.shape()));
  LMLAB_CHECK(x.size(-1) == w.size(1), ShapeError, "[linear] input features ", x.size(-1),
              " differ from weight in_features ", w.size(1), " (x ", shape_str(x.shape()), ", w ",
              shape_str(w.shape()), ")");
  // Flatten leading dims so one GEMM covers the whole batch: [R, K] @ [K, N].
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  Tensor x2 = x.reshape({-1, x.size(-1)});
  Tensor y;
  if (autocast_bf16() && x2.dtype() == DType::F32 && w.dtype() == DType::F32)
    y = reference_mode() ? matmul(x2.to(DType::BF16), w.to(DType::BF16).transpose(0, 1), DType::F32)
                         : linear_autocast(x2, w);
  else
    y = matmul(x2, w.transpose(0, 1));
  if (bias.defined()) {
    LMLAB_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), ShapeError, "[linear] bias must be [",
                w.size(0), "], got ", shape_str(bias.shape()));
    y = add(y, bias.dtype() == y.dtype() ? bias : bias.to(y.dtype()));
  }
  lead.push_back(w.size(0));
  return y.reshape(lead);
}

}  // namespace lmlab
