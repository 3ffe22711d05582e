// softmax / cross_entropy / embedding / dropout: argument errors (type and message), the fused
// cross-entropy against the log_softmax composite at vocabulary scale, exp_fast accuracy, and
// thread-count independence of dropout masks and embedding gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lmlab/lmlab.h"
#include "lmlab/ops/cpu/softmax_kernels.h"

using namespace lmlab;

namespace {

// Runs f, expects it to throw E, and returns the message.
template <class E, class F>
std::string throws(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw the wrong type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

Tensor ids64(std::vector<int64_t> v) { return Tensor::from_vector(v); }

// Restores the thread count on scope exit.
struct ThreadCount {
  int prev = num_threads();
  ~ThreadCount() { set_num_threads(prev); }
};

}  // namespace

TEST(SoftmaxErrors, DTypeAndDim) {
  Generator g(1);
  Tensor x = Tensor::randn({3, 4}, g);
  EXPECT_NE(throws<DTypeError>([&] { softmax(x.to(DType::BF16)); }).find("[softmax]"), std::string::npos);
  throws<DTypeError>([&] { log_softmax(Tensor::zeros({3}, DType::I64)); });
  EXPECT_NE(throws<IndexError>([&] { softmax(x, 2); }).find("[softmax] dim out of range"), std::string::npos);
  throws<IndexError>([&] { log_softmax(x, -3); });
  // 0-d input: one row of one element.
  EXPECT_DOUBLE_EQ(softmax(Tensor::scalar(3.0)).item(), 1.0);
  EXPECT_DOUBLE_EQ(log_softmax(Tensor::scalar(3.0)).item(), 0.0);
}

TEST(CrossEntropyErrors, ShapesDTypesValues) {
  Generator g(2);
  Tensor x = Tensor::randn({4, 5}, g);
  Tensor t = ids64({0, 1, 2, 3});
  std::string m = throws<ShapeError>([&] { cross_entropy(Tensor::randn({5}, g), ids64({1})); });
  EXPECT_NE(m.find("[cross_entropy] logits must be [N, V]"), std::string::npos) << m;
  throws<ShapeError>([&] { cross_entropy(Tensor::randn({2, 4, 5}, g), t); });
  m = throws<ShapeError>([&] { cross_entropy(x, ids64({0, 1, 2})); });
  EXPECT_NE(m.find("[cross_entropy] target must be [N] matching logits [N, V]: got target [3]"), std::string::npos)
      << m;
  throws<ShapeError>([&] { cross_entropy(x, t.reshape({2, 2})); });
  throws<ShapeError>([&] { cross_entropy(Tensor::zeros({2, 0}), ids64({-100, -100})); });
  m = throws<DTypeError>([&] { cross_entropy(x, t.to(DType::F32)); });
  EXPECT_NE(m.find("target"), std::string::npos) << m;
  m = throws<DTypeError>([&] { cross_entropy(x.to(DType::BF16), t); });
  EXPECT_NE(m.find("bf16"), std::string::npos) << m;
  m = throws<IndexError>([&] { cross_entropy(x, ids64({0, 1, 5, 3})); });
  EXPECT_NE(m.find("target 5 out of range [0, 5) at row 2"), std::string::npos) << m;
  m = throws<IndexError>([&] { cross_entropy(x, Tensor::from_vector(std::vector<int32_t>{0, -1, 2, 3})); });
  EXPECT_NE(m.find("target -1 out of range [0, 5) at row 1"), std::string::npos) << m;
  for (double eps : {-0.1, 1.5, std::nan("")}) {
    CrossEntropyOptions o;
    o.label_smoothing = eps;
    throws<ValueError>([&] { cross_entropy(x, t, o); });
  }
  CrossEntropyOptions oz;
  oz.z_loss = -1e-3;
  throws<ValueError>([&] { cross_entropy(x, t, oz); });
}

TEST(CrossEntropy, AllIgnoredMeanIsZero) {
  Generator g(3);
  Tensor x = Tensor::randn({3, 7}, g, DType::F64).set_requires_grad();
  Tensor loss = cross_entropy(x, ids64({-100, -100, -100}));
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double v : x.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
}

// Fused CE (f32 and f64) against log_softmax + one-hot gather composites in f64, at N=64, V=32000,
// with ignored rows, label smoothing and z-loss: loss and gradient.
TEST(CrossEntropy, FusedMatchesComposite) {
  const int64_t N = 64, V = 32000;
  Generator g(4);
  Tensor x64 = Tensor::randn({N, V}, g, DType::F64);
  {
    NoGrad ng;
    x64 = mul(x64, 3.0);
  }
  std::vector<int64_t> t(N);
  for (int64_t i = 0; i < N; ++i) t[size_t(i)] = i % 9 == 4 ? -100 : g.randint(0, V);
  Tensor target = ids64(t);
  for (double eps : {0.0, 0.1}) {
    for (double z : {0.0, 1e-2}) {
      CrossEntropyOptions o;
      o.label_smoothing = eps;
      o.z_loss = z;
      // Composite: -sum_ij w_ij log_softmax(x)_ij / count + z * sum_i lse_i^2 / count, w the smoothed one-hot.
      std::vector<double> w(size_t(N * V), 0.0), keep(size_t(N), 0.0);
      double count = 0;
      for (int64_t i = 0; i < N; ++i) {
        if (t[size_t(i)] < 0) continue;
        keep[size_t(i)] = 1;
        count += 1;
        for (int64_t j = 0; j < V; ++j) w[size_t(i * V + j)] = eps / double(V) + (j == t[size_t(i)] ? 1 - eps : 0);
      }
      Tensor W = Tensor::from_vector(w, {N, V}), K = Tensor::from_vector(keep, {N});
      Tensor xc = x64.detach().clone().set_requires_grad();
      Tensor lse = logsumexp(xc, {1});
      Tensor ref = div(add(neg(sum(mul(log_softmax(xc, 1), W))), mul(sum(mul(mul(lse, lse), K)), z)),
                       Tensor::scalar(count, DType::F64));
      ref.backward();
      // Gradient entries are ~1 / (count V): the absolute tolerance is relative to the largest.
      double gmax = 0;
      for (double v : xc.grad().to_vector<double>()) gmax = std::max(gmax, std::abs(v));
      for (DType dt : {DType::F32, DType::F64}) {
        Tensor xf = x64.to(dt).detach().set_requires_grad();  // a fresh leaf even when to() is a no-op
        Tensor loss = cross_entropy(xf, target, o);
        loss.backward();
        double tol = dt == DType::F32 ? 1e-5 : 1e-11;
        EXPECT_NEAR(loss.item(), ref.item(), tol * std::abs(ref.item()))
            << dtype_name(dt) << " eps " << eps << " z " << z;
        auto r = compare("cross_entropy grad", xf.grad().to(DType::F64), xc.grad(), tol * gmax, tol);
        EXPECT_TRUE(r.ok) << dtype_name(dt) << " eps " << eps << " z " << z << ": " << r.message;
      }
    }
  }
}

// Reductions: None gives per-row losses (0 where ignored); Sum is their sum; Mean divides by kept rows.
TEST(CrossEntropy, Reductions) {
  Generator g(5);
  Tensor x = Tensor::randn({5, 6}, g, DType::F64);
  Tensor t = ids64({1, -100, 5, 0, -100});
  CrossEntropyOptions o;
  o.reduction = Reduction::None;
  auto rows = cross_entropy(x, t, o).to_vector<double>();
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1], 0.0);
  EXPECT_EQ(rows[4], 0.0);
  Tensor lp = log_softmax(x, 1);
  EXPECT_NEAR(rows[0], -lp.at({0, 1}), 1e-12);
  EXPECT_NEAR(rows[2], -lp.at({2, 5}), 1e-12);
  o.reduction = Reduction::Sum;
  double s = cross_entropy(x, t, o).item();
  EXPECT_NEAR(s, rows[0] + rows[2] + rows[3], 1e-12);
  o.reduction = Reduction::Mean;
  EXPECT_NEAR(cross_entropy(x, t, o).item(), s / 3, 1e-12);
}

// Masked logits (-inf, as for padded vocabulary entries): finite loss, zero gradient there; the
// fast kernels agree with the reference, including a row whose first chunk is entirely -inf.
TEST(CrossEntropy, MinusInfinityLogits) {
  const int64_t N = 3, V = 5000;
  Generator g(11);
  std::vector<float> x = Tensor::randn({N, V}, g).to_vector<float>();
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < V; j += 3) x[size_t(j)] = ninf;           // row 0: every third entry
  for (int64_t j = 0; j < 4096; ++j) x[size_t(V + j)] = ninf;       // row 1: first two chunks
  for (int64_t j = 0; j < V; ++j)
    if (j != 7) x[size_t(2 * V + j)] = ninf;                         // row 2: only the target is finite
  Tensor target = ids64({1, 4500, 7});
  CrossEntropyOptions o;
  o.reduction = Reduction::None;
  o.z_loss = 1e-2;
  std::vector<std::vector<float>> losses, grads;
  for (bool reference : {false, true}) {
    ReferenceMode rm(reference);
    Tensor xl = Tensor::from_vector(x, {N, V}).set_requires_grad();
    Tensor loss = cross_entropy(xl, target, o);
    sum(loss).backward();
    losses.push_back(loss.to_vector<float>());
    grads.push_back(xl.grad().to_vector<float>());
  }
  for (int64_t i = 0; i < N; ++i) {
    EXPECT_TRUE(std::isfinite(losses[0][size_t(i)]));
    EXPECT_NEAR(losses[0][size_t(i)], losses[1][size_t(i)], 1e-5 * (1 + std::abs(losses[1][size_t(i)])));
  }
  EXPECT_NEAR(losses[0][2], 1e-2 * double(x[size_t(2 * V + 7)]) * double(x[size_t(2 * V + 7)]), 1e-5);
  for (size_t k = 0; k < grads[0].size(); ++k) {
    if (x[k] == ninf) {
      ASSERT_EQ(grads[0][k], 0.0f) << k;
    }
    ASSERT_NEAR(grads[0][k], grads[1][k], 1e-6) << k;
  }
}

TEST(EmbeddingErrors, ShapesDTypesRange) {
  Generator g(6);
  Tensor w = Tensor::randn({32000, 2}, g);
  std::string m = throws<IndexError>([&] { embedding(w, ids64({0, 1, 2, 3, 4, 70000, 6})); });
  EXPECT_EQ(m, "[embedding] id 70000 out of range [0, 32000) at position 5");
  m = throws<IndexError>([&] { embedding(w, Tensor::from_vector(std::vector<int32_t>{-1}, {1, 1})); });
  EXPECT_EQ(m, "[embedding] id -1 out of range [0, 32000) at position 0");
  throws<ShapeError>([&] { embedding(Tensor::randn({5}, g), ids64({0})); });
  throws<ShapeError>([&] { embedding(Tensor::randn({2, 3, 4}, g), ids64({0})); });
  m = throws<DTypeError>([&] { embedding(w, Tensor::zeros({3}, DType::F32)); });
  EXPECT_NE(m.find("ids"), std::string::npos) << m;
  throws<DTypeError>([&] { embedding(w.to(DType::BF16), ids64({0})); });
  throws<DTypeError>([&] { embedding(Tensor::zeros({4, 2}, DType::I64), ids64({0})); });
}

// The embedding gradient: unused rows zero, used rows the sum of their positions' gradients, and
// bitwise identical for 1 and 2 threads.
TEST(Embedding, BackwardDeterministicAcrossThreads) {
  ThreadCount tc;
  const int64_t V = 500, C = 64, n = 4096;
  Generator g(7);
  Tensor w = Tensor::randn({V, C}, g);
  std::vector<int64_t> ids(n);
  for (auto& v : ids) v = g.randint(0, V / 2) * 2;  // odd rows unused
  Tensor up = Tensor::randn({n, C}, g);
  std::vector<std::vector<float>> grads;
  for (int th : {1, 2}) {
    set_num_threads(th);
    Tensor wl = w.detach().clone().set_requires_grad();
    Tensor y = embedding(wl, Tensor::from_vector(ids, {64, 64}));
    sum(mul(y, up.reshape({64, 64, C}))).backward();
    grads.push_back(wl.grad().to_vector<float>());
  }
  EXPECT_EQ(grads[0], grads[1]);
  for (int64_t r = 1; r < V; r += 2)
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(grads[0][size_t(r * C + c)], 0.0f);
  // Row 0 against a direct sum in double.
  auto upv = up.to_vector<float>();
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t k = 0; k < n; ++k)
      if (ids[size_t(k)] == 0) s += upv[size_t(k * C + c)];
    EXPECT_NEAR(grads[0][size_t(c)], s, 1e-4);
  }
}

TEST(DropoutErrors, ProbabilityAndDType) {
  Generator g(8);
  Tensor x = Tensor::randn({4, 4}, g);
  for (double p : {-0.1, 1.5, std::nan("")}) {
    std::string m = throws<ValueError>([&] { dropout(x, p, true, g); });
    EXPECT_NE(m.find("[dropout]"), std::string::npos) << m;
  }
  throws<DTypeError>([&] { dropout(Tensor::zeros({3}, DType::I32), 0.5, true, g); });
  EXPECT_TRUE(dropout(x, 0.0, true, g).same(x));
  EXPECT_TRUE(dropout(x, 0.5, false, g).same(x));
  for (float v : dropout(x, 1.0, true, g).to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

// Masks come from Philox counters: 1 and 2 threads give the same output and gradient, the kept
// fraction is about 1 - p, and kept elements are scaled by 1 / (1 - p).
TEST(Dropout, ThreadIndependentMask) {
  ThreadCount tc;
  const int64_t n = 1 << 17;
  const double p = 0.3;
  Generator g(9);
  Tensor x = Tensor::randn({n / 128, 128}, g);
  std::vector<std::vector<float>> outs, grads;
  for (int th : {1, 2}) {
    set_num_threads(th);
    Generator gen(1234);
    Tensor xl = x.detach().clone().set_requires_grad();
    Tensor y = dropout(xl, p, true, gen);
    EXPECT_EQ(gen.offset(), uint64_t(n));
    sum(y).backward();
    outs.push_back(y.to_vector<float>());
    grads.push_back(xl.grad().to_vector<float>());
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(grads[0], grads[1]);
  auto xv = x.to_vector<float>();
  int64_t kept = 0;
  const float scale = float(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; ++i) {
    if (grads[0][size_t(i)] != 0.0f) {
      ++kept;
      EXPECT_EQ(grads[0][size_t(i)], scale);
      EXPECT_EQ(outs[0][size_t(i)], xv[size_t(i)] * scale);
    } else {
      EXPECT_EQ(outs[0][size_t(i)], 0.0f);
    }
  }
  EXPECT_NEAR(double(kept) / double(n), 1 - p, 0.01);
}

// exp_fast (the vectorised expf of the softmax / cross-entropy kernels) against libm in double.
TEST(Softmax, ExpFastAccuracy) {
  double worst = 0;
  for (int64_t k = 0; k <= 4000000; ++k) {
    float x = float(-87.33 * double(k) / 4000000.0);
    double e = std::exp(double(x));
    worst = std::max(worst, std::abs(double(cpu::exp_fast(x)) - e) / e);
  }
  EXPECT_LT(worst, 2e-7);
  EXPECT_EQ(cpu::exp_fast(0.0f), 1.0f);
  EXPECT_EQ(cpu::exp_fast(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(cpu::exp_fast(-100.0f), 0.0f);
  EXPECT_TRUE(std::isnan(cpu::exp_fast(std::nanf(""))));
}

// A long shifted row (the cross-entropy regime) through the fast kernels against reference mode.
TEST(Softmax, LongRowsMatchReference) {
  Generator g(10);
  Tensor x = Tensor::randn({4, 32000}, g);
  {
    NoGrad ng;
    x = add(mul(x, 4.0), 30.0);
  }
  for (bool log : {false, true}) {
    Tensor fast = log ? log_softmax(x) : softmax(x);
    Tensor ref;
    {
      ReferenceMode rm;
      ref = log ? log_softmax(x) : softmax(x);
    }
    auto r = compare(log ? "log_softmax" : "softmax", fast, ref, log ? 1e-5 : 1e-9, 1e-6);
    EXPECT_TRUE(r.ok) << r.message;
  }
}
