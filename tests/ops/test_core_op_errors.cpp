// Bad input for elementwise, reduction, matmul and view ops: each raises the lmlab exception that
// names the op, the argument and the shapes. Plus bf16 matmul (oneDNN) against f32.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;

namespace {
using lmlab::test::expect_error;
}  // namespace

TEST(OpErrors, Elementwise) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 3});
  expect_error<ShapeError>([&] { add(a, b); }, "[add] shapes not broadcastable: [2, 3] and [4, 3]");
  expect_error<DTypeError>([&] { mul(a, Tensor::zeros({2, 3}, DType::F64)); }, "[mul] dtype mismatch");
  expect_error<DTypeError>([&] { exp(Tensor::zeros({2}, DType::I64)); }, "[exp] argument 'x' has unsupported dtype i64");
  expect_error<DTypeError>([&] { tanh(Tensor::zeros({2}, DType::BF16)); }, "[tanh]");
  expect_error<DTypeError>([&] { where(Tensor::zeros({2}), a, a); }, "[where] cond must be u8");
  expect_error<ShapeError>([&] { masked_fill(Tensor::zeros({3}), Tensor::zeros({2, 3}, DType::U8), 1.0); },
                           "[masked_fill] mask [2, 3] must broadcast to x [3]");
  expect_error<ValueError>([&] { clamp(a, 1.0, -1.0); }, "[clamp] lower bound");
  expect_error<ValueError>([&] { add(Tensor(), a); }, "[add] argument 'a' is an undefined tensor");
  Tensor p = Tensor::zeros({2}).set_requires_grad();
  expect_error<AutogradError>([&] { mul_(p, 2.0); }, "[mul_] in-place update of a tensor that requires grad");
}

TEST(OpErrors, Reductions) {
  Tensor x = Tensor::zeros({2, 3});
  expect_error<IndexError>([&] { sum(x, {2}); }, "[sum] dim out of range: expected in [-2, 1], got 2");
  expect_error<IndexError>([&] { sum(x, {1, -1}); }, "[sum] dim -1 repeated");
  expect_error<ShapeError>([&] { var(Tensor::zeros({1, 3}), {0}); }, "[var] reduction of 1 elements");
  expect_error<ShapeError>([&] { max(Tensor::zeros({0, 3}), {0}); }, "[max] reduction over an empty dimension");
  expect_error<ShapeError>([&] { argmax(Tensor::zeros({0}), 0); }, "[argmax] empty dimension");
}

TEST(OpErrors, MatmulAndViews) {
  expect_error<ShapeError>([&] { matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5})); },
                           "[matmul] inner dimensions differ: a [2, 3] @ b [4, 5]");
  expect_error<ShapeError>([&] { matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})); },
                           "[matmul] shapes not broadcastable");
  expect_error<DTypeError>([&] { matmul(Tensor::zeros({2, 3}, DType::I32), Tensor::zeros({3, 2}, DType::I32)); },
                           "[matmul] unsupported dtype i32");
  expect_error<ShapeError>([&] { linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 5})); },
                           "[linear] input features 3 differ from weight in_features 5");
  expect_error<ShapeError>([&] { Tensor::zeros({6}).view({4, -1}); }, "[view] cannot infer -1");
  expect_error<IndexError>([&] { Tensor::zeros({3}).select(0, 3); }, "[select] index 3 out of range for dim 0 of size 3");
  expect_error<IndexError>([&] { Tensor::zeros({3}).as_strided({4}, {1}, 0); }, "[as_strided]");
}

TEST(Matmul, Bf16MatchesF32) {
  Generator g(11);
  for (auto [M, K, N, batch] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 7, 5, 1}, {37, 64, 19, 3}, {128, 96, 64, 2}}) {
    Tensor a = Tensor::randn({batch, M, K}, g), b = Tensor::randn({batch, K, N}, g);
    Tensor ab = a.to(DType::BF16), bb = b.to(DType::BF16);
    // reference: f32 product of the bf16-rounded inputs
    Tensor ref = matmul(ab.to(DType::F32), bb.to(DType::F32));
    Tensor y = matmul(ab, bb, DType::F32);
    auto r = compare("bf16 matmul", y, ref, 1e-3, 1e-3);
    EXPECT_TRUE(r.ok) << r.message;
    // transposed operand view, bf16 output
    Tensor bt = bb.transpose(-1, -2).contiguous().transpose(-1, -2);
    Tensor y2 = matmul(ab, bt).to(DType::F32);
    auto r2 = compare("bf16 matmul transposed", y2, ref, 0.05, 1e-2);
    EXPECT_TRUE(r2.ok) << r2.message;
  }
}

TEST(Matmul, Bf16Backward) {
  Generator g(12);
  Tensor a = Tensor::randn({8, 16}, g).set_requires_grad(), b = Tensor::randn({16, 4}, g).set_requires_grad();
  Tensor y = matmul(a.to(DType::BF16), b.to(DType::BF16), DType::F32);
  sum(y).backward();
  EXPECT_EQ(a.grad().dtype(), DType::F32);
  Tensor ga = matmul(Tensor::ones({8, 4}), b.detach().transpose(0, 1));
  auto r = compare("bf16 grad", a.grad(), ga, 0.1, 2e-2);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Matmul, LargeFastMatchesReference) {
  Generator g(13);
  Tensor a = Tensor::randn({3, 129, 257}, g), b = Tensor::randn({257, 65}, g);
  Tensor fast = matmul(a, b);
  Tensor ref;
  {
    ReferenceMode rm;
    ref = matmul(a, b);
  }
  auto r = compare("matmul", fast, ref, 1e-4, 1e-4);
  EXPECT_TRUE(r.ok) << r.message;
}
