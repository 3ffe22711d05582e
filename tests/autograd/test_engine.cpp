// Autograd engine: accumulation, hooks, retain_grad, retain_graph, NoGrad, detach, grad().
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"

using namespace lmlab;

TEST(Autograd, ChainAndAccumulate) {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}).set_requires_grad();
  Tensor y = sum(mul(x, x));  // d/dx = 2x
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 4, 6}));
  Tensor y2 = sum(mul(x, 3.0));
  y2.backward();  // accumulates
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, DiamondGraph) {
  Tensor x = Tensor::from_vector(std::vector<double>{0.5, -1.0}).set_requires_grad();
  Tensor a = exp(x);
  Tensor b = mul(a, a);     // uses a twice
  Tensor c = add(b, a);     // and again
  sum(c).backward();        // d/dx (e^{2x} + e^x) = 2e^{2x} + e^x
  auto g = x.grad().to_vector<double>();
  EXPECT_NEAR(g[0], 2 * std::exp(1.0) + std::exp(0.5), 1e-12);
  EXPECT_NEAR(g[1], 2 * std::exp(-2.0) + std::exp(-1.0), 1e-12);
}

TEST(Autograd, HooksRetainGradAndGraphRelease) {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}).set_requires_grad();
  Tensor h = mul(x, 2.0);
  h.retain_grad();
  int calls = 0;
  h.register_hook([&](const Tensor& g) { ++calls; return mul(g, 10.0); });
  x.register_hook([&](const Tensor&) { ++calls; return Tensor(); });
  Tensor y = sum(h);
  y.backward(Tensor(), /*retain_graph=*/true);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(h.grad().to_vector<double>(), (std::vector<double>{10, 10}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{20, 20}));
  y.backward();  // retained graph: second pass allowed
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{40, 40}));
  EXPECT_THROW(y.backward(), AutogradError);  // freed now
}

TEST(Autograd, NoGradDetachErrors) {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}).set_requires_grad();
  {
    NoGrad ng;
    Tensor y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
  }
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.storage().get(), x.storage().get());
  EXPECT_THROW(sum(d).backward(), AutogradError);
  Tensor y = mul(x, x);
  EXPECT_THROW(y.backward(), AutogradError);  // non-scalar without grad
  EXPECT_THROW(Tensor::arange(3).set_requires_grad(), DTypeError);
}

TEST(Autograd, FunctionalGrad) {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3}).set_requires_grad();
  Tensor m = mul(x, x);
  Tensor y = sum(mul(m, x));
  auto g = grad(y, {x, m});
  EXPECT_EQ(g[0].to_vector<double>(), (std::vector<double>{3, 12, 27}));
  EXPECT_EQ(g[1].to_vector<double>(), (std::vector<double>{1, 2, 3}));
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, ViewsBackward) {
  Tensor x = Tensor::arange(12, DType::F64).reshape({3, 4}).detach().set_requires_grad();
  Tensor y = x.transpose(0, 1).slice(0, 1, 3).select(1, 2);  // x[2, 1:3]
  sum(mul(y, y)).backward();
  auto g = x.grad().to_vector<double>();
  std::vector<double> e(12, 0.0);
  e[9] = 18;
  e[10] = 20;
  EXPECT_EQ(g, e);
}

TEST(Gradcheck, DetectsWrongGradient) {
  // A deliberately wrong backward must be caught.
  auto bad = [](const std::vector<Tensor>& in) {
    Tensor x = in[0];
    Tensor y = mul(x, x).detach();
    return record(y, "bad_square", {x}, {x.detach()}, [](const Tensor& g, const std::vector<Tensor>& s) {
      return std::vector<Tensor>{mul(g, s[0])};  // should be 2x
    });
  };
  Generator gen(3);
  auto r = gradcheck(bad, {Tensor::randn({5}, gen, DType::F64)});
  EXPECT_FALSE(r.ok);
  auto good = [](const std::vector<Tensor>& in) { return mul(in[0], in[0]); };
  EXPECT_TRUE(gradcheck(good, {Tensor::randn({5}, gen, DType::F64)}).ok);
}
