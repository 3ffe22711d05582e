// Core tensor: storage sharing, views, dtype conversion, RNG thread independence, errors.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"

using namespace lmlab;

TEST(Tensor, FactoriesAndAccess) {
  Tensor t = Tensor::arange(6, DType::F32).reshape({2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_DOUBLE_EQ(t.at({1, 2}), 5.0);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_THROW(t.at({2, 0}), IndexError);
  EXPECT_THROW(Tensor::empty({-1}), ShapeError);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::arange(24, DType::F32).reshape({2, 3, 4});
  Tensor tr = t.transpose(0, 2);
  EXPECT_EQ(tr.shape(), (Shape{4, 3, 2}));
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_EQ(tr.storage().get(), t.storage().get());
  EXPECT_DOUBLE_EQ(tr.at({3, 1, 1}), t.at({1, 1, 3}));
  Tensor s = t.slice(2, 1, 4, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_DOUBLE_EQ(s.at({1, 2, 1}), t.at({1, 2, 3}));
  Tensor sel = t.select(1, -1);
  EXPECT_EQ(sel.shape(), (Shape{2, 4}));
  EXPECT_DOUBLE_EQ(sel.at({1, 0}), t.at({1, 2, 0}));
  Tensor n = t.narrow(0, 1, 1);
  EXPECT_DOUBLE_EQ(n.at({0, 0, 0}), 12.0);
  Tensor e = Tensor::arange(3, DType::F32).reshape({3, 1}).expand({3, 5});
  EXPECT_EQ(e.strides()[1], 0);
  EXPECT_DOUBLE_EQ(e.at({2, 4}), 2.0);
  Tensor c = tr.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector<float>(), tr.to_vector<float>());
  // view of a non-contiguous tensor works when strides allow it, else reshape copies
  Tensor p = t.permute({1, 0, 2});   // [3,2,4]
  EXPECT_THROW(p.view({6, 4}), ShapeError);
  EXPECT_EQ(p.reshape({6, 4}).to_vector<float>(), p.contiguous().view({6, 4}).to_vector<float>());
  Tensor q = t.view({6, 4});
  EXPECT_EQ(q.storage().get(), t.storage().get());
  EXPECT_EQ(t.flatten().shape(), (Shape{24}));
  EXPECT_EQ(t.unsqueeze(1).shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(t.unsqueeze(1).squeeze(1).shape(), (Shape{2, 3, 4}));
  EXPECT_THROW(t.narrow(0, 1, 2), IndexError);
  EXPECT_THROW(t.permute({0, 0, 1}), IndexError);
  EXPECT_THROW(t.transpose(0, 3), IndexError);
  EXPECT_THROW(t.expand({3, 3, 4}), ShapeError);
  EXPECT_THROW(t.view({5, 5}), ShapeError);
}

TEST(Tensor, DtypeConversions) {
  std::vector<float> v = {0.0f, 1.0f, -2.5f, 3.14159f, 65504.0f, 1e-8f, -1e30f};
  Tensor t = Tensor::from_vector(v);
  auto bf = t.to(DType::BF16).to(DType::F32).to_vector<float>();
  auto hf = t.to(DType::F16).to(DType::F32).to_vector<float>();
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_NEAR(bf[i], v[i], std::abs(v[i]) * 4e-3) << i;
  }
  EXPECT_EQ(hf[4], 65504.0f);
  EXPECT_TRUE(std::isinf(hf[6]));
  EXPECT_NEAR(hf[3], 3.14159f, 2e-3);
  EXPECT_EQ(f16_to_f32(f32_to_f16(5.960464477539063e-08f)), 5.960464477539063e-08f);  // smallest subnormal
  // exhaustive f16 round trip: every finite half converts to f32 and back unchanged
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), uint16_t(h)) << h;
  }
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = bf16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), uint16_t(h)) << h;
  }
  Tensor i64 = Tensor::from_vector(std::vector<int64_t>{(int64_t(1) << 60) + 1});
  EXPECT_EQ(i64.to(DType::I64).to_vector<int64_t>()[0], (int64_t(1) << 60) + 1);
  EXPECT_THROW(dtype_from_name("f8"), DTypeError);
}

TEST(Rng, PhiloxKnownAnswer) {
  // Random123 known-answer test for philox4x32-10: counter = key = 0.
  auto r = philox4x32(0, 0, 0);
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
}

TEST(Rng, IndependentOfThreadCount) {
  int prev = num_threads();
  set_num_threads(1);
  Generator g1(42);
  auto a = Tensor::randn({1000, 37}, g1).to_vector<float>();
  set_num_threads(2);
  Generator g2(42);
  auto b = Tensor::randn({1000, 37}, g2).to_vector<float>();
  set_num_threads(prev);
  EXPECT_EQ(a, b);
  double m = 0, s = 0;
  for (float x : a) { m += x; s += double(x) * x; }
  m /= double(a.size());
  s = s / double(a.size()) - m * m;
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(s, 1.0, 0.03);
  // generator advances: two draws differ
  Generator g3(7);
  auto u1 = Tensor::rand({8}, g3).to_vector<float>();
  auto u2 = Tensor::rand({8}, g3).to_vector<float>();
  EXPECT_NE(u1, u2);
}

TEST(Parallel, CoversRangeOnce) {
  std::vector<int> hits(10007, 0);
  parallel_for(0, 10007, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) hits[size_t(i)]++;
  });
  for (int h : hits) ASSERT_EQ(h, 1);
}
