// The comparison helpers every test leans on must fail on garbage: a NaN or Inf anywhere makes
// test::max_abs_diff / max_abs NaN (so EXPECT_LE, EXPECT_GT and tolerances scaled by them fail),
// compare() reports it, and gradcheck does not let a NaN gradient vanish from max_abs.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::max_abs;
using lmlab::test::max_abs_diff;

namespace {
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();
}  // namespace

TEST(Comparisons, MaxAbsDiffIsNaNOnGarbage) {
  std::vector<float> a = {1, 2, 3}, b = {1, 2.5f, 3};
  EXPECT_DOUBLE_EQ(max_abs_diff(a, b), 0.5);
  EXPECT_DOUBLE_EQ(max_abs(b), 3.0);
  for (float bad : {kNaN, kInf, -kInf}) {
    for (size_t i = 0; i < a.size(); ++i) {
      std::vector<float> x = a;
      x[i] = bad;
      EXPECT_TRUE(std::isnan(max_abs_diff(x, b))) << "value " << bad << " at " << i;
      EXPECT_TRUE(std::isnan(max_abs_diff(b, x))) << "value " << bad << " at " << i;
      EXPECT_TRUE(std::isnan(max_abs(x))) << "value " << bad << " at " << i;
    }
  }
  EXPECT_TRUE(std::isnan(max_abs_diff({1, 2}, {1, 2, 3}))) << "different sizes";
}

// The failure the old helpers let through: NaN logits passed EXPECT_LE(max_abs_diff, tol).
TEST(Comparisons, ExpectationsOnNaNLogitsFail) {
  std::vector<float> ref = {0.5f, -1.0f, 2.0f}, got = {0.5f, kNaN, 2.0f};
  EXPECT_NONFATAL_FAILURE(EXPECT_LE(max_abs_diff(got, ref), 1e-3), "max_abs_diff");
  EXPECT_NONFATAL_FAILURE(EXPECT_GT(max_abs_diff(got, ref), 0.0), "max_abs_diff");
  EXPECT_NONFATAL_FAILURE(EXPECT_LE(max_abs_diff(ref, ref), 0.02 * max_abs(got)), "max_abs");
}

TEST(Comparisons, CompareFlagsNonFinite) {
  Tensor e = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  for (float bad : {kNaN, kInf}) {
    Tensor a = Tensor::from_vector(std::vector<float>{1, bad, 3}, {3});
    CheckResult r = compare("x", a, e, 1e-3, 1e-3);
    EXPECT_FALSE(r.ok) << r.message;
    EXPECT_TRUE(std::isinf(r.max_abs)) << r.max_abs;
  }
  // the same non-finite value on both sides is a match (an expected -inf mask stays -inf)
  Tensor m = Tensor::from_vector(std::vector<float>{1, -kInf, 3}, {3});
  EXPECT_TRUE(compare("mask", m, m, 0, 0).ok);
}

TEST(Comparisons, GradcheckFailsOnNaNGradient) {
  // forward finite, backward NaN: sqrt at 0 has an infinite derivative, times 0 gives NaN
  auto f = [](const std::vector<Tensor>& in) { return mul(sqrt(in[0]), Tensor::scalar(0.0, DType::F64)); };
  Tensor x = Tensor::from_vector(std::vector<double>{0.0, 1.0}, {2});
  CheckResult r = gradcheck(f, {x});
  EXPECT_FALSE(r.ok) << r.message;
  EXPECT_TRUE(std::isinf(r.max_abs)) << r.max_abs;
}
