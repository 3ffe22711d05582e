// rms_norm / layer_norm / rope / swiglu: error paths (each raises the lmlab exception naming the op
// and the offending shape or config), and mathematical properties the op table cannot see: RoPE is a
// norm-preserving rotation, identity at position 0, relative (dot products depend on m - n only),
// llama3 / yarn frequency schedules (HF modeling_rope_utils), norms against their composite forms.
// Properties run in both fast and reference mode.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;

namespace {

using lmlab::test::expect_error;

RopeConfig cfg_of(int64_t D, int64_t rot = 0, bool interleaved = false) {
  RopeConfig c;
  c.head_dim = D;
  c.rotary_dim = rot;
  c.interleaved = interleaved;
  return c;
}

Tensor randn64(Generator& g, const Shape& s) { return Tensor::randn(s, g, DType::F64); }

void expect_close(const std::string& name, const Tensor& a, const Tensor& e, double atol, double rtol = 0) {
  auto r = compare(name, a, e, atol, rtol);
  EXPECT_TRUE(r.ok) << r.message;
}

double dot(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// ---------------------------------------------------------------- errors

TEST(NormRopeErrors, Norms) {
  Tensor x = Tensor::zeros({4, 64});
  expect_error<ShapeError>([&] { rms_norm(x, Tensor::ones({32})); }, "[rms_norm] weight must be [C] = [64], got [32]");
  expect_error<ShapeError>([&] { rms_norm(x, Tensor::ones({1, 64})); },
                           "[rms_norm] weight must be [C] = [64], got [1, 64]");
  expect_error<ShapeError>([&] { layer_norm(x, Tensor(), Tensor::zeros({63})); },
                           "[layer_norm] bias must be [C] = [64], got [63]");
  expect_error<DTypeError>([&] { rms_norm(Tensor::zeros({4, 64}, DType::I64), Tensor()); },
                           "[rms_norm] argument 'x' has unsupported dtype i64");
  expect_error<DTypeError>([&] { layer_norm(x, Tensor::ones({64}, DType::I32), Tensor()); },
                           "[layer_norm] argument 'weight' has unsupported dtype i32");
  expect_error<DTypeError>([&] { rms_norm(x, Tensor::ones({64}, DType::F64)); }, "[rms_norm] dtype mismatch");
  expect_error<ValueError>([&] { rms_norm(x, Tensor(), -1.0); }, "[rms_norm] eps must be finite and >= 0");
  expect_error<ShapeError>([&] { layer_norm(Tensor::scalar(1.0), Tensor(), Tensor()); },
                           "[layer_norm] x must be [..., C]");
  expect_error<ShapeError>([&] { rms_norm(Tensor::zeros({3, 0}), Tensor()); },
                           "[rms_norm] normalised dim C must be non-empty");
}

TEST(NormRopeErrors, RopeConfig) {
  Tensor x = Tensor::zeros({2, 5, 3, 8});
  expect_error<ConfigError>([&] { rope(x, cfg_of(8, 5)); }, "[rope] rotary_dim must be even");
  expect_error<ConfigError>([&] { rope(Tensor::zeros({1, 2, 1, 7}), cfg_of(7)); }, "[rope] rotary_dim must be even");
  expect_error<ConfigError>([&] { rope(x, cfg_of(8, 10)); }, "[rope] rotary_dim must be <= head_dim = 8, got 10");
  expect_error<ConfigError>([&] { rope(x, cfg_of(16)); }, "[rope] cfg.head_dim = 16 does not match x's head dim D = 8");
  expect_error<ConfigError>([&] { rope_inv_freq(cfg_of(8, -2)); }, "[rope] rotary_dim must be >= 0");
  RopeConfig bad_theta = cfg_of(8);
  bad_theta.theta = 0;
  expect_error<ConfigError>([&] { rope_inv_freq(bad_theta); }, "[rope] theta must be positive");
  RopeConfig l3 = cfg_of(8);
  l3.scaling.type = RopeScaling::Type::Llama3;
  l3.scaling.factor = 8;
  l3.scaling.low_freq_factor = 4;
  l3.scaling.high_freq_factor = 4;
  expect_error<ConfigError>([&] { rope(x, l3); }, "[rope] llama3 scaling needs 0 < low_freq_factor < high_freq_factor");
  RopeConfig lin = cfg_of(8);
  lin.scaling.type = RopeScaling::Type::Linear;
  lin.scaling.factor = 0;
  expect_error<ConfigError>([&] { rope_attention_factor(lin); }, "[rope] scaling factor must be positive");
  RopeConfig yarn = cfg_of(8);
  yarn.scaling.type = RopeScaling::Type::Yarn;
  yarn.scaling.beta_slow = 0;
  expect_error<ConfigError>([&] { rope_inv_freq(yarn); }, "[rope] yarn beta_fast and beta_slow must be positive");
}

TEST(NormRopeErrors, RopeFreqFactors) {
  // Explicit factors divide the unscaled inverse frequencies pair by pair (llama.cpp's rope_freqs).
  RopeConfig plain = cfg_of(8);
  RopeConfig ff = plain;
  ff.scaling.freq_factors = {1.0, 2.0, 3.0, 8.0};
  auto base = rope_inv_freq(plain).to_vector<double>(), got = rope_inv_freq(ff).to_vector<double>();
  for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(got[i], base[i] / ff.scaling.freq_factors[i]);
  EXPECT_EQ(rope_freq_factors(ff), ff.scaling.freq_factors);
  // llama3 scaling as factors: 1 for short wavelengths, `factor` for long ones, a blend between.
  RopeConfig l3 = cfg_of(16);
  l3.scaling.type = RopeScaling::Type::Llama3;
  l3.scaling.factor = 8;
  l3.scaling.original_max_position = 64;
  auto f3 = rope_freq_factors(l3);
  auto b3 = rope_inv_freq(cfg_of(16)).to_vector<double>(), s3 = rope_inv_freq(l3).to_vector<double>();
  ASSERT_EQ(f3.size(), 8u);
  EXPECT_DOUBLE_EQ(f3.front(), 1.0);
  EXPECT_DOUBLE_EQ(f3.back(), 8.0);
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(f3[i], b3[i] / s3[i], 1e-12);
  // The same rotation either way.
  RopeConfig as_factors = cfg_of(16);
  as_factors.scaling.freq_factors = f3;
  Generator g(3);
  Tensor x = Tensor::randn({1, 4, 2, 16}, g);
  auto a = rope(x, l3, 100).to_vector<float>(), c = rope(x, as_factors, 100).to_vector<float>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], c[i], 1e-6);
  RopeConfig short_ff = cfg_of(8);
  short_ff.scaling.freq_factors = {1.0, 2.0};
  expect_error<ConfigError>([&] { rope_inv_freq(short_ff); }, "[rope] freq_factors has 2 entries, expected rotary_dim / 2 = 4");
  RopeConfig neg = cfg_of(8);
  neg.scaling.freq_factors = {1.0, -2.0, 1.0, 1.0};
  expect_error<ConfigError>([&] { rope_inv_freq(neg); }, "[rope] freq_factors[1] must be finite and positive, got -2");
}

TEST(NormRopeErrors, RopeInputs) {
  Tensor x = Tensor::zeros({2, 5, 3, 8});
  expect_error<ShapeError>([&] { rope(Tensor::zeros({5, 3, 8}), cfg_of(8)); },
                           "[rope] x must be [B, T, H, D], got [5, 3, 8]");
  expect_error<DTypeError>([&] { rope(Tensor::zeros({2, 5, 3, 8}, DType::I64), cfg_of(8)); },
                           "[rope] argument 'x' has unsupported dtype i64");
  const char* msg = "[rope] positions must be [T] = [5] or [B, T] = [2, 5], got ";
  expect_error<ShapeError>([&] { rope(x, cfg_of(8), Tensor::zeros({6}, DType::I64)); }, std::string(msg) + "[6]");
  expect_error<ShapeError>([&] { rope(x, cfg_of(8), Tensor::zeros({5, 2}, DType::I64)); }, std::string(msg) + "[5, 2]");
  expect_error<ShapeError>([&] { rope(x, cfg_of(8), Tensor::zeros({2, 5, 1}, DType::I32)); },
                           std::string(msg) + "[2, 5, 1]");
  expect_error<DTypeError>([&] { rope(x, cfg_of(8), Tensor::zeros({5})); },
                           "[rope] argument 'positions' must be an index tensor (i64 or i32), got f32");
}

TEST(NormRopeErrors, Swiglu) {
  expect_error<ShapeError>([&] { swiglu(Tensor::zeros({3, 4}), Tensor::zeros({5, 4})); }, "[swiglu]");
  expect_error<DTypeError>([&] { swiglu(Tensor::zeros({3}), Tensor::zeros({3}, DType::F64)); },
                           "[swiglu] dtype mismatch");
  expect_error<DTypeError>([&] { swiglu(Tensor::zeros({3}, DType::I32), Tensor::zeros({3}, DType::I32)); },
                           "[swiglu] argument 'gate' has unsupported dtype i32");
}

// ---------------------------------------------------------------- rope properties

class RopeProperties : public ::testing::TestWithParam<bool> {  // param: reference mode
 protected:
  ReferenceMode mode_{GetParam()};
};

// HF apply_rotary_pos_emb on a hand-sized example: D = 4, theta = 1e4 -> inv_freq [1, 0.01], position 1.
TEST_P(RopeProperties, MatchesHandComputedExample) {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 1, 4});
  double c0 = std::cos(1.0), s0 = std::sin(1.0), c1 = std::cos(0.01), s1 = std::sin(0.01);
  // rotate_half pairs (0, 2), (1, 3): y = x * cos + rotate_half(x) * sin, rotate_half(x) = [-3, -4, 1, 2].
  Tensor half =
      Tensor::from_vector<double>({1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1}, {1, 1, 1, 4});
  expect_close("rotate_half", rope(x, cfg_of(4), 1), half, 1e-15);
  // interleaved pairs (0, 1), (2, 3).
  Tensor inter =
      Tensor::from_vector<double>({1 * c0 - 2 * s0, 2 * c0 + 1 * s0, 3 * c1 - 4 * s1, 4 * c1 + 3 * s1}, {1, 1, 1, 4});
  expect_close("interleaved", rope(x, cfg_of(4, 0, true), 1), inter, 1e-15);
  // partial rotary: rot 2 of D 4 rotates (0, 1) with inv_freq [1] and passes channels 2, 3 through.
  Tensor part = Tensor::from_vector<double>({1 * c0 - 2 * s0, 2 * c0 + 1 * s0, 3, 4}, {1, 1, 1, 4});
  expect_close("partial", rope(x, cfg_of(4, 2), 1), part, 1e-15);
}

TEST_P(RopeProperties, PositionZeroIsIdentity) {
  Generator g(1);
  Tensor x = randn64(g, {2, 4, 3, 8});
  for (bool inter : {false, true}) {
    expect_close("offset 0, T = 1", rope(x.narrow(1, 0, 1), cfg_of(8, 0, inter), 0), x.narrow(1, 0, 1).contiguous(), 0);
    expect_close("explicit zeros [B, T]", rope(x, cfg_of(8, 6, inter), Tensor::zeros({2, 4}, DType::I64)), x, 0);
  }
}

TEST_P(RopeProperties, PreservesPairNorms) {
  Generator g(2);
  const int64_t B = 2, T = 5, H = 3, D = 8;
  Tensor x = randn64(g, {B, T, H, D});
  for (bool inter : {false, true}) {
    for (int64_t rot : {8, 4}) {
      auto xs = x.to_vector<double>(), ys = rope(x, cfg_of(D, rot, inter), 997).to_vector<double>();
      for (int64_t row = 0; row < B * T * H; ++row) {
        for (int64_t i = 0; i < rot / 2; ++i) {
          int64_t a = row * D + (inter ? 2 * i : i), b = row * D + (inter ? 2 * i + 1 : i + rot / 2);
          EXPECT_NEAR(std::hypot(ys[size_t(a)], ys[size_t(b)]), std::hypot(xs[size_t(a)], xs[size_t(b)]), 1e-12);
        }
        for (int64_t d = rot; d < D; ++d) EXPECT_EQ(ys[size_t(row * D + d)], xs[size_t(row * D + d)]);
      }
    }
  }
}

TEST_P(RopeProperties, OffsetEqualsExplicitPositions) {
  Generator g(3);
  const int64_t B = 2, T = 6;
  Tensor x = randn64(g, {B, T, 3, 8});
  const int64_t k = 11;
  std::vector<int64_t> pt, pbt;
  for (int64_t t = 0; t < T; ++t) pt.push_back(k + t);
  for (int64_t b = 0; b < B; ++b) pbt.insert(pbt.end(), pt.begin(), pt.end());
  RopeConfig cfg = cfg_of(8, 6, true);
  Tensor y = rope(x, cfg, k);
  expect_close("[T] positions", rope(x, cfg, Tensor::from_vector<int64_t>(pt, {T})), y, 0);
  expect_close("[B, T] positions", rope(x, cfg, Tensor::from_vector<int64_t>(pbt, {B, T})), y, 0);
  std::vector<int32_t> p32(pt.begin(), pt.end());
  expect_close("i32 positions", rope(x, cfg, Tensor::from_vector<int32_t>(p32, {T})), y, 0);
}

// <R(m) q, R(n) k> = <q, R(n - m) k>: only the offset matters (RoFormer section 3.4.2).
TEST_P(RopeProperties, DotProductDependsOnlyOnRelativePosition) {
  Generator g(4);
  const int64_t D = 16;
  Tensor q = randn64(g, {1, 1, 1, D}), k = randn64(g, {1, 1, 1, D});
  RopeConfig l3 = cfg_of(D, 12, true);
  l3.scaling.type = RopeScaling::Type::Llama3;
  l3.scaling.factor = 8;
  l3.scaling.original_max_position = 64;
  for (const RopeConfig& cfg : {cfg_of(D), l3}) {
    auto score = [&](int64_t m, int64_t n) { return dot(rope(q, cfg, m), rope(k, cfg, n)); };
    double ref = score(3, 0);
    for (int64_t n : {1, 7, 100, 1000, 12345}) EXPECT_NEAR(score(n + 3, n), ref, 1e-9 * (1 + std::abs(ref))) << n;
    EXPECT_GT(std::abs(score(4, 0) - ref), 1e-6);  // and it does depend on the offset
  }
}

// The backward is R^T g = rotation by the negated angle: rope at positions -p undoes rope at p.
TEST_P(RopeProperties, BackwardIsInverseRotation) {
  Generator g(5);
  const int64_t T = 4;
  Tensor x = randn64(g, {2, T, 3, 8}).set_requires_grad();
  Tensor gy = randn64(g, {2, T, 3, 8});
  RopeConfig cfg = cfg_of(8, 6);
  rope(x, cfg, 5).backward(gy);
  std::vector<int64_t> neg;
  for (int64_t t = 0; t < T; ++t) neg.push_back(-(5 + t));
  expect_close("grad", x.grad(), rope(gy, cfg, Tensor::from_vector<int64_t>(neg, {T})), 1e-14);
}

INSTANTIATE_TEST_SUITE_P(FastAndReference, RopeProperties, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "reference" : "fast"; });

// ---------------------------------------------------------------- frequency schedules

// Llama 3.1's published rope_scaling: theta 5e5, D 128, factor 8, low 1, high 4, original 8192.
TEST(RopeSchedules, Llama3KeepsHighAndDividesLowFrequencies) {
  RopeConfig base = cfg_of(128);
  base.theta = 500000;
  RopeConfig l3 = base;
  l3.scaling.type = RopeScaling::Type::Llama3;
  l3.scaling.factor = 8;
  l3.scaling.low_freq_factor = 1;
  l3.scaling.high_freq_factor = 4;
  l3.scaling.original_max_position = 8192;
  auto f0 = rope_inv_freq(base).to_vector<double>(), f = rope_inv_freq(l3).to_vector<double>();
  ASSERT_EQ(f.size(), 64u);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    EXPECT_DOUBLE_EQ(f0[i], std::pow(500000.0, -double(2 * i) / 128));
    double wavelen = 2 * M_PI / f0[i];
    if (wavelen < 8192.0 / 4) {
      EXPECT_EQ(f[i], f0[i]) << i;
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_DOUBLE_EQ(f[i], f0[i] / 8) << i;
      ++divided;
    } else {
      EXPECT_LT(f[i], f0[i]) << i;
      EXPECT_GT(f[i], f0[i] / 8) << i;
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
  EXPECT_EQ(rope_attention_factor(l3), 1.0);
  // High-frequency pairs rotate exactly as unscaled RoPE, low-frequency ones as at position p / 8.
  Generator g(6);
  Tensor x = randn64(g, {1, 1, 1, 128});
  auto y = rope(x, l3, 4096).to_vector<double>(), y0 = rope(x, base, 4096).to_vector<double>();
  auto y8 = rope(x, base, 512).to_vector<double>();
  EXPECT_NEAR(y[0], y0[0], 1e-12);
  EXPECT_NEAR(y[64], y0[64], 1e-12);
  EXPECT_NEAR(y[63], y8[63], 1e-9);
  EXPECT_NEAR(y[127], y8[127], 1e-9);
}

TEST(RopeSchedules, LinearDividesEveryFrequency) {
  RopeConfig lin = cfg_of(16);
  lin.scaling.type = RopeScaling::Type::Linear;
  lin.scaling.factor = 4;
  auto f0 = rope_inv_freq(cfg_of(16)).to_vector<double>(), f = rope_inv_freq(lin).to_vector<double>();
  for (size_t i = 0; i < f.size(); ++i) EXPECT_DOUBLE_EQ(f[i], f0[i] / 4);
  Generator g(7);
  Tensor x = randn64(g, {1, 1, 2, 16});
  expect_close("rope(p) with factor 4 == rope(p / 4)", rope(x, lin, 40), rope(x, cfg_of(16), 10), 1e-12);
}

// YaRN with D = 16, L = 64, theta 1e4: find_correction_dim gives [floor(-0.99), ceil(2.02)] -> ramp
// over pairs [0, 3]: pair 0 extrapolates, pairs >= 3 interpolate, pairs 1, 2 blend 2/3 and 1/3.
TEST(RopeSchedules, YarnRampAndAttentionFactor) {
  RopeConfig y = cfg_of(16);
  y.scaling.type = RopeScaling::Type::Yarn;
  y.scaling.factor = 4;
  y.scaling.original_max_position = 64;
  auto f0 = rope_inv_freq(cfg_of(16)).to_vector<double>(), f = rope_inv_freq(y).to_vector<double>();
  ASSERT_EQ(f.size(), 8u);
  EXPECT_DOUBLE_EQ(f[0], f0[0]);
  EXPECT_DOUBLE_EQ(f[1], f0[1] / 4 * (1.0 / 3) + f0[1] * (2.0 / 3));
  EXPECT_DOUBLE_EQ(f[2], f0[2] / 4 * (2.0 / 3) + f0[2] * (1.0 / 3));
  for (size_t i = 3; i < 8; ++i) EXPECT_DOUBLE_EQ(f[i], f0[i] / 4) << i;
  EXPECT_DOUBLE_EQ(rope_attention_factor(y), 0.1 * std::log(4.0) + 1);
  y.scaling.attention_factor = 1.25;
  EXPECT_EQ(rope_attention_factor(y), 1.25);
  RopeConfig y1 = y;
  y1.scaling.factor = 1;
  y1.scaling.attention_factor = 0;
  EXPECT_EQ(rope_attention_factor(y1), 1.0);  // HF get_mscale: no correction when factor <= 1
  // cos/sin carry the factor: at position 0 rotated channels scale by 1.25, pass-through ones do not.
  RopeConfig yp = y;
  yp.rotary_dim = 8;
  Generator g(8);
  Tensor x = randn64(g, {1, 1, 1, 16});
  auto xs = x.to_vector<double>(), ys = rope(x, yp, 0).to_vector<double>();
  for (size_t d = 0; d < 16; ++d) EXPECT_NEAR(ys[d], d < 8 ? 1.25 * xs[d] : xs[d], 1e-15) << d;
}

// ---------------------------------------------------------------- norms

TEST(NormProperties, RmsNormMatchesCompositeAtC4096) {
  Generator g(9);
  Tensor x = Tensor::randn({3, 4096}, g), w = add(mul(Tensor::randn({4096}, g), 0.1), 1.0);
  for (bool ref : {false, true}) {
    ReferenceMode rm(ref);
    Tensor composite = mul(mul(x, rsqrt(add(mean(mul(x, x), {-1}, true), 1e-6))), w);
    expect_close(ref ? "reference" : "fast", rms_norm(x, w, 1e-6), composite, 1e-6);
  }
}

TEST(NormProperties, LayerNormMatchesComposite) {
  Generator g(10);
  Tensor x = add(Tensor::randn({5, 4096}, g, DType::F64), 3.0), w = Tensor::randn({4096}, g, DType::F64),
         b = Tensor::randn({4096}, g, DType::F64);
  Tensor composite = add(mul(div(sub(x, mean(x, {-1}, true)), sqrt(add(var(x, {-1}, 0, true), 1e-5))), w), b);
  for (bool ref : {false, true}) {
    ReferenceMode rm(ref);
    expect_close(ref ? "reference" : "fast", layer_norm(x, w, b, 1e-5), composite, 1e-12, 1e-12);
  }
}

// Fused backward vs the gradient of the composite expression, at a size with several row chunks.
TEST(NormProperties, FusedBackwardMatchesCompositeGradients) {
  Generator g(11);
  Tensor x0 = Tensor::randn({67, 300}, g, DType::F64), w0 = Tensor::randn({300}, g, DType::F64),
         b0 = Tensor::randn({300}, g, DType::F64), gy = Tensor::randn({67, 300}, g, DType::F64);
  auto grads = [&](bool fused, bool rms) {
    Tensor x = x0.clone().set_requires_grad(), w = w0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
    Tensor y;
    if (fused) {
      y = rms ? rms_norm(x, w, 1e-6) : layer_norm(x, w, b, 1e-5);
    } else if (rms) {
      y = mul(mul(x, rsqrt(add(mean(mul(x, x), {-1}, true), 1e-6))), w);
    } else {
      y = add(mul(div(sub(x, mean(x, {-1}, true)), sqrt(add(var(x, {-1}, 0, true), 1e-5))), w), b);
    }
    y.backward(gy);
    return std::vector<Tensor>{x.grad(), w.grad(), rms ? Tensor() : b.grad()};
  };
  for (bool rms : {true, false}) {
    auto f = grads(true, rms), c = grads(false, rms);
    const char* names[] = {"dx", "dweight", "dbias"};
    for (size_t i = 0; i < f.size(); ++i) {
      if (!c[i].defined()) continue;
      expect_close(std::string(rms ? "rms " : "layer ") + names[i], f[i], c[i], 1e-10, 1e-10);
    }
  }
}

TEST(NormProperties, WeightGradientIsDeterministic) {
  Generator g(12);
  Tensor x0 = Tensor::randn({257, 512}, g), gy = Tensor::randn({257, 512}, g);
  Tensor w0 = Tensor::randn({512}, g), b0 = Tensor::randn({512}, g);
  auto run = [&] {
    Tensor w = w0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
    rms_norm(x0, w).backward(gy);
    layer_norm(x0, w, b).backward(gy);
    return std::vector<std::vector<float>>{w.grad().to_vector<float>(), b.grad().to_vector<float>()};
  };
  auto first = run();
  for (int rep = 0; rep < 3; ++rep) EXPECT_EQ(run(), first);
}

TEST(NormProperties, RowStatisticsHandleLargeOffsets) {
  // Mean 1e4, std 1: a one-pass E[x^2] - mean^2 in float would lose every digit of the variance.
  Generator g(13);
  Tensor x = add(Tensor::randn({4, 1024}, g), 1e4);
  Tensor y = layer_norm(x, Tensor(), Tensor());
  Tensor x64 = x.to(DType::F64);
  Tensor expected = layer_norm(x64, Tensor(), Tensor()).to(DType::F32);
  expect_close("layer_norm f32 vs f64", y, expected, 1e-5);
}

// ---------------------------------------------------------------- swiglu

TEST(SwigluProperties, MatchesCompositeWithBroadcastGradients) {
  Generator g(14);
  Tensor gate0 = Tensor::randn({4, 1, 7}, g, DType::F64), up0 = Tensor::randn({3, 7}, g, DType::F64);
  Tensor gy = Tensor::randn({4, 3, 7}, g, DType::F64);
  for (bool ref : {false, true}) {
    ReferenceMode rm(ref);
    Tensor ga = gate0.clone().set_requires_grad(), ua = up0.clone().set_requires_grad();
    Tensor gb = gate0.clone().set_requires_grad(), ub = up0.clone().set_requires_grad();
    Tensor y = swiglu(ga, ua), yc = mul(silu(gb), ub);
    expect_close("forward", y, yc, 1e-14, 1e-14);
    y.backward(gy);
    yc.backward(gy);
    expect_close("dgate", ga.grad(), gb.grad(), 1e-13, 1e-13);
    expect_close("dup", ua.grad(), ub.grad(), 1e-13, 1e-13);
  }
}

}  // namespace
