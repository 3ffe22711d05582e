// Optimizers: AdamW and SGD against hand-computed torch semantics; state save/load resumes exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lmlab/lmlab.h"
#include "lmlab/train/optim.h"

using namespace lmlab;

TEST(AdamW, MatchesClosedForm) {
  Tensor p = Tensor::from_vector(std::vector<double>{1.0, -2.0});
  p.set_requires_grad();
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.01;
  AdamW opt({p}, o);
  double pv[2] = {1.0, -2.0}, m[2] = {0, 0}, v[2] = {0, 0};
  for (int t = 1; t <= 3; ++t) {
    opt.zero_grad();
    sum(mul(p, p)).backward();  // g = 2p
    opt.step();
    for (int i = 0; i < 2; ++i) {
      double g = 2 * pv[i];
      pv[i] *= 1 - o.lr * o.weight_decay;
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
      pv[i] -= o.lr * mh / (std::sqrt(vh) + o.eps);
    }
  }
  auto r = p.to_vector<double>();
  EXPECT_NEAR(r[0], pv[0], 1e-12);
  EXPECT_NEAR(r[1], pv[1], 1e-12);
}

TEST(SGD, MomentumAndNesterov) {
  Tensor p = Tensor::from_vector(std::vector<double>{1.0});
  p.set_requires_grad();
  SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  SGD opt({p}, o);
  double x = 1.0, b = 0;
  for (int t = 0; t < 3; ++t) {
    opt.zero_grad();
    sum(mul(p, p)).backward();
    opt.step();
    double g = 2 * x;
    b = t == 0 ? g : 0.9 * b + g;
    x -= 0.1 * b;
  }
  EXPECT_NEAR(p.item(), x, 1e-12);
  SGDOptions bad;
  bad.nesterov = true;
  EXPECT_THROW(SGD({p}, bad), ConfigError);
}

TEST(Optimizer, SaveLoadResumesExactly) {
  Generator g(5);
  Tensor w0 = Tensor::randn({4, 3}, g);
  auto run = [&](int steps_before, int steps_after, bool reload) {
    Tensor w = w0.clone().detach().set_requires_grad();
    AdamW opt({w}, AdamWOptions{});
    auto path = (std::filesystem::temp_directory_path() / "lmlab_opt.safetensors").string();
    for (int i = 0; i < steps_before; ++i) {
      opt.zero_grad();
      sum(mul(w, w)).backward();
      opt.step();
    }
    if (reload) {
      opt.save(path);
      AdamW fresh({w}, AdamWOptions{});
      fresh.load(path);
      EXPECT_EQ(fresh.steps(), steps_before);
      for (int i = 0; i < steps_after; ++i) {
        fresh.zero_grad();
        sum(mul(w, w)).backward();
        fresh.step();
      }
      std::filesystem::remove(path);
    } else {
      for (int i = 0; i < steps_after; ++i) {
        opt.zero_grad();
        sum(mul(w, w)).backward();
        opt.step();
      }
    }
    return w.to_vector<float>();
  };
  EXPECT_EQ(run(3, 4, false), run(3, 4, true));
}

TEST(ClipGradNorm, ScalesToMaxNorm) {
  Tensor a = Tensor::from_vector(std::vector<float>{3, 4}).set_requires_grad();
  sum(mul(a, 1.0)).backward();  // grad = [1, 1]
  a.set_grad(Tensor::from_vector(std::vector<float>{3, 4}));
  double n = clip_grad_norm({a}, 1.0);
  EXPECT_NEAR(n, 5.0, 1e-6);
  auto g = a.grad().to_vector<float>();
  EXPECT_NEAR(std::sqrt(g[0] * g[0] + g[1] * g[1]), 1.0, 1e-5);
}

// Many parameters over several reduction chunks (and odd sizes for the 8-lane tails), f32 and f64:
// the norm equals a plain double sum, every gradient is scaled by max_norm / norm.
TEST(ClipGradNorm, LargeGradientsMatchPlainSum) {
  Generator gen(5);
  for (DType dt : {DType::F32, DType::F64}) {
    std::vector<Tensor> ps;
    std::vector<std::vector<double>> before;
    double want = 0;
    for (int64_t n : {200003, 13, 70000}) {
      Tensor p = Tensor::zeros({n}, dt).set_requires_grad();
      Tensor g = Tensor::randn({n}, gen, dt);
      p.set_grad(g);
      std::vector<double> v = g.to(DType::F64).to_vector<double>();
      for (double x : v) want += x * x;
      before.push_back(v);
      ps.push_back(p);
    }
    want = std::sqrt(want);
    double n = clip_grad_norm(ps, 1.0);
    EXPECT_NEAR(n, want, 1e-9 * want);
    double s = 1.0 / (want + 1e-6);
    for (size_t i = 0; i < ps.size(); ++i) {
      std::vector<double> after = ps[i].grad().to(DType::F64).to_vector<double>();
      ASSERT_EQ(after.size(), before[i].size());
      for (size_t j = 0; j < after.size(); j += 997) EXPECT_NEAR(after[j], before[i][j] * s, 1e-6 * std::abs(before[i][j] * s) + 1e-12);
    }
  }
}
