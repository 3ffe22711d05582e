// linear under AutocastBF16: the fused node (bf16 operands, f32 accumulation and output; backward
// dx = bf16(g) W, dW = bf16(g)^T x written [N, K]) against the composition the reference mode keeps
// (casts + matmul in f64 over the same bf16-rounded values), forward and every gradient, on odd
// shapes, a strided input, a bias, and with f32 weights left f32 outside autocast.
#include <gtest/gtest.h>

#include "lmlab/lmlab.h"

using namespace lmlab;

namespace {
struct Out {
  Tensor y, dx, dw, db;
};
Out run(const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& r, bool transpose_x) {
  Tensor x = x0.detach().contiguous().set_requires_grad();
  Tensor w = w0.detach().contiguous().set_requires_grad();
  Tensor b = b0.defined() ? b0.detach().contiguous().set_requires_grad() : Tensor();
  // a transposed view as input: [.., K] rows that are not contiguous
  Tensor xin = transpose_x ? x.transpose(0, 1).contiguous().transpose(0, 1) : x;
  Tensor y;
  {
    AutocastBF16 ac(true);
    y = linear(xin, w, b);
  }
  sum(mul(y, r)).backward();
  return {y.detach(), x.grad(), w.grad(), b.defined() ? b.grad() : Tensor()};
}
}  // namespace

TEST(AutocastLinear, FusedNodeMatchesReferenceComposition) {
  Generator g(31);
  struct Case {
    Shape x;
    int64_t N;
    bool bias, transpose_x;
  };
  for (const Case& c : {Case{{1, 7}, 5, false, false}, Case{{3, 5, 37}, 29, true, false}, Case{{37, 64}, 19, false, true},
                        Case{{130, 96}, 67, true, false}}) {
    int64_t K = c.x.back();
    Tensor x = Tensor::randn(c.x, g), w = Tensor::randn({c.N, K}, g);
    Tensor b = c.bias ? Tensor::randn({c.N}, g) : Tensor();
    Shape ys = c.x;
    ys.back() = c.N;
    Tensor r = Tensor::randn(ys, g);
    Out fast = run(x, w, b, r, c.transpose_x);
    Out ref;
    {
      ReferenceMode rm;
      ref = run(x, w, b, r, c.transpose_x);
    }
    EXPECT_EQ(fast.y.dtype(), DType::F32);
    EXPECT_EQ(fast.dw.dtype(), DType::F32);
    EXPECT_TRUE(fast.dw.is_contiguous());
    std::string name = "x " + shape_str(c.x) + " N " + std::to_string(c.N);
    for (auto [what, a, e] : {std::tuple<const char*, Tensor, Tensor>{"y", fast.y, ref.y}, {"dx", fast.dx, ref.dx},
                              {"dW", fast.dw, ref.dw}}) {
      auto cr = compare(name + " " + what, a, e, 1e-4, 1e-4);
      EXPECT_TRUE(cr.ok) << cr.message;
    }
    if (c.bias) {
      auto cr = compare(name + " db", fast.db, ref.db, 1e-4, 1e-4);
      EXPECT_TRUE(cr.ok) << cr.message;
    }
    // the products really ran on bf16-rounded operands: f32 differs by more than the tolerance
    Tensor yf = matmul(x.reshape({-1, K}), w.transpose(0, 1)).reshape(ys);
    if (b.defined()) yf = add(yf, b);
    EXPECT_FALSE(compare(name + " vs f32", fast.y, yf, 1e-5, 1e-5).ok);
  }
}
