// Quantized products (ops/qmatmul.h): qlinear against the f64 reference for every weight type over
// a grid of shapes, with error bounds derived from what each path rounds (below); every SIMD kernel
// set this CPU runs (AVX-512 VNNI, AVX2) against the portable one and the reference; the dense
// (bf16 panel) path; bias, batch dims, strided x, thread counts; QMatrix construction and its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lmlab/lmlab.h"
#include "lmlab/ops/qmatmul.h"
#include "tests/test_util.h"

using namespace lmlab;

namespace {

constexpr double kU = 1.0 / 16777216.0;  // f32 unit roundoff, 2^-24

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                              GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K};

// Activation block the kernels quantize x in for weight type t (0: x is not quantized).
int64_t act_block(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0:
    case GgmlType::Q4_0: return 32;
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: return 256;
    default: return 0;
  }
}

// Sets the dense threshold / portable switch for a scope.
struct DenseFrom {
  int64_t prev;
  explicit DenseFrom(int64_t m) : prev(cpu::qgemm_set_dense_min_rows(m)) {}
  ~DenseFrom() { cpu::qgemm_set_dense_min_rows(prev); }
};
struct UseIsa {
  std::string prev;
  explicit UseIsa(const std::string& name) : prev(cpu::qgemm_force_isa(name)) {}
  ~UseIsa() { cpu::qgemm_force_isa(prev); }
};

// The SIMD kernel sets this CPU runs (every set but "portable").
std::vector<std::string> simd_isas() {
  std::vector<std::string> v;
  for (const std::string& s : cpu::qgemm_isas())
    if (s != "portable") v.push_back(s);
  return v;
}

// The activations the integer kernels see: per block d = amax / 127, code = round(x * 127 / amax).
std::vector<float> quantized_acts(const std::vector<float>& x, int64_t M, int64_t K, int64_t block) {
  std::vector<float> out(x.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t b0 = 0; b0 < K; b0 += block) {
      const float* xb = &x[size_t(m * K + b0)];
      float amax = 0.f;
      for (int64_t j = 0; j < block; ++j) amax = std::max(amax, std::fabs(xb[j]));
      float id = amax > 0.f ? 127.f / amax : 0.f, d = amax / 127.f;
      for (int64_t j = 0; j < block; ++j)
        out[size_t(m * K + b0 + j)] = d * std::nearbyint(std::fmin(std::fmax(xb[j] * id, -127.f), 127.f));
    }
  return out;
}

std::vector<float> bf16_round(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
  return out;
}

enum class Path { Integer, Dense };

// qlinear(x, w) for one shape, checked two ways:
//  (1) against qlinear_reference(x) within the bound the path's rounding of x implies:
//      integer kernels: |x - x^| <= amax(block) / 254 per value, so |y - y_ref| <= sum_k |w_k| amax_b(k) / 254;
//      bf16 panels (quantized weights, M >= dense threshold): x and w rounded to bf16 (2^-8 each):
//      2^-7 sum |w||x|;  bf16 weights, M > 1 on oneDNN: x rounded to bf16: 2^-8 sum |w||x| (the f32
//      fallback, cpu::bf16_gemm_path(), does not round x);
//      plus, always, f32 accumulation over K: K u sum |w||x|.
//  (2) where the path's rounded activations x^ can be reproduced here (integer kernels: Q8
//      codes; bf16 weights: bf16 x; f32/f16: x itself), against the f64 product with x^ within
//      float rounding alone: (K/16 + 32) u sum (|w_k| + 3 max|w|) |x^_k| for quantized types (a
//      block term d*sc*q - dmin*m can be 3x the row's largest weight), K u sum |w||x^| otherwise.
void check_case(const Tensor& x, const QMatrix& w, Path path) {
  const GgmlType t = w.type;
  const int64_t M = x.size(0), K = w.cols, N = w.rows;
  SCOPED_TRACE(::testing::Message() << ggml_type_name(t) << " M=" << M << " K=" << K << " N=" << N
                                    << (path == Path::Dense ? " dense" : " integer"));
  Tensor y, ref;
  {
    DenseFrom df(path == Path::Dense ? 1 : (int64_t(1) << 40));
    y = qlinear(x, w);
  }
  ref = qlinear_reference(x, w);
  ASSERT_EQ(y.shape(), (Shape{M, N}));
  auto X = x.to_vector<float>(), W = w.dequantize().to_vector<float>();
  auto Y = y.to_vector<float>(), R = ref.to_vector<float>();
  const int64_t ab = act_block(t);
  const bool quant = ab > 0;
  std::vector<float> Xh;  // rounded activations, when reproducible
  if (quant && path == Path::Integer) Xh = quantized_acts(X, M, K, ab);
  else if (t == GgmlType::BF16 && M > 1 && cpu::bf16_gemm_uses_onednn()) Xh = bf16_round(X);  // oneDNN rounds x
  else if (!quant) Xh = X;
  std::vector<double> amax;  // per activation row and block
  if (quant) {
    amax.assign(size_t(M * (K / ab)), 0.0);
    for (int64_t i = 0; i < M * K; ++i)
      amax[size_t(i / ab)] = std::max(amax[size_t(i / ab)], std::fabs(double(X[size_t(i)])));
  }
  double worst = 0;
  for (int64_t n = 0; n < N; ++n) {
    double wmax = 0;
    for (int64_t k = 0; k < K; ++k) wmax = std::max(wmax, std::fabs(double(W[size_t(n * K + k)])));
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = &X[size_t(m * K)];
      const float* wr = &W[size_t(n * K)];
      double swx = 0, qerr = 0, yh = 0, sh = 0;
      for (int64_t k = 0; k < K; ++k) {
        double aw = std::fabs(double(wr[k]));
        swx += aw * std::fabs(double(xr[k]));
        if (quant && path == Path::Integer) qerr += aw * amax[size_t((m * K + k) / ab)] / 254.0;
        if (!Xh.empty()) {
          double xh = Xh[size_t(m * K + k)];
          yh += double(wr[k]) * xh;
          sh += (quant ? aw + 3 * wmax : aw) * std::fabs(xh);
        }
      }
      double bound = K * kU * swx;
      if (quant) bound += path == Path::Integer ? qerr * (1 + 1.0 / 256) : std::ldexp(swx, -7) * (1 + 1.0 / 128);
      else if (t == GgmlType::BF16 && M > 1) bound += std::ldexp(swx, -8);
      double yv = Y[size_t(m * N + n)];
      double err = std::fabs(yv - double(R[size_t(m * N + n)]));
      ASSERT_LE(err, bound) << "y[" << m << ", " << n << "] = " << yv << " ref " << R[size_t(m * N + n)];
      if (!Xh.empty()) {
        double tight = (quant ? double(K / 16 + 32) : double(K)) * kU * sh + 1e-30;
        ASSERT_LE(std::fabs(yv - yh), tight) << "y[" << m << ", " << n << "] = " << yv << " vs product with rounded x "
                                             << yh;
      }
      if (bound > 0) worst = std::max(worst, err / bound);
    }
  }
  if (quant) {
    EXPECT_GT(worst, 0.0) << "a quantized product exactly equal to the reference everywhere is suspicious";
  }
}

void sweep(GgmlType t, Path path, std::initializer_list<int64_t> Ms) {
  std::vector<int64_t> Ks = {256, 512, 768, 2048};
  if (act_block(t) == 32) Ks.insert(Ks.begin(), {32, 96});
  Generator g(100);
  for (int64_t K : Ks) {
    // One 300-row matrix per K; the smaller N take its first rows (wrap() over a prefix of the bytes).
    QMatrix full = QMatrix::quantize(mul(Tensor::randn({300, K}, g), Tensor::scalar(0.05)), t);
    for (int64_t M : Ms) {
      Tensor x = Tensor::randn({M, K}, g);
      for (int64_t N : {1, 7, 64, 300})
        check_case(x, QMatrix::wrap(t, N, K, full.bytes, size_t(N) * full.row_bytes()), path);
    }
  }
}

class QLinearType : public ::testing::TestWithParam<GgmlType> {};

}  // namespace

TEST_P(QLinearType, MatchesReferenceWithinActivationRounding) {
  sweep(GetParam(), Path::Integer, {1, 3, 17, 64});
}

TEST_P(QLinearType, DensePanelPathMatchesReference) {
  if (!ggml_is_quantized(GetParam())) GTEST_SKIP() << "dense types have no panel switch";
  sweep(GetParam(), Path::Dense, {3, 64});
}

// Every SIMD kernel set against the portable one (same integer block sums: only the float
// accumulation order differs) and against the reference, over K with an odd number of blocks and
// M covering every tile remainder (1..4 rows per pass, then 5 and 7).
TEST_P(QLinearType, EveryKernelSetAgreesWithPortableAndReference) {
  const GgmlType t = GetParam();
  const std::vector<std::string> isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD kernels for this CPU";
  DenseFrom df(int64_t(1) << 40);
  std::vector<int64_t> Ks = {256, 768, 1280};  // 1, 3, 5 blocks of 256
  if (act_block(t) == 32) Ks = {32, 96, 288, 800};
  if (!ggml_is_quantized(t)) Ks = {1, 7, 37, 100, 257};
  Generator g(7);
  for (int64_t K : Ks) {
    const int64_t N = 37;
    QMatrix w = QMatrix::quantize(mul(Tensor::randn({N, K}, g), Tensor::scalar(0.05)), t);
    auto W = w.dequantize().to_vector<float>();
    for (int64_t M : {1, 2, 3, 4, 5, 7}) {
      Tensor x = Tensor::randn({M, K}, g), slow;
      {
        UseIsa u("portable");
        EXPECT_STREQ(cpu::qgemm_isa(), "portable");
        slow = qlinear(x, w);
      }
      auto S = slow.to_vector<float>(), X = x.to_vector<float>();
      for (const std::string& isa : isas) {
        UseIsa u(isa);
        ASSERT_EQ(cpu::qgemm_isa(), isa);
        SCOPED_TRACE(isa);
        check_case(x, w, Path::Integer);
        auto F = qlinear(x, w).to_vector<float>();
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            double wmax = 0, sx = 0;
            for (int64_t k = 0; k < K; ++k) wmax = std::max(wmax, std::fabs(double(W[size_t(n * K + k)])));
            for (int64_t k = 0; k < K; ++k)
              sx += (std::fabs(double(W[size_t(n * K + k)])) + 3 * wmax) * std::fabs(double(X[size_t(m * K + k)]));
            double tol = (ggml_is_quantized(t) ? double(K / 16 + 32) : double(2 * K)) * kU * sx;
            ASSERT_LE(std::fabs(double(F[size_t(m * N + n)]) - double(S[size_t(m * N + n)])), tol)
                << isa << " " << ggml_type_name(t) << " M=" << M << " K=" << K << " at [" << m << ", " << n << "]";
          }
      }
    }
  }
}

TEST_P(QLinearType, BiasBatchDimsAndStridedInput) {
  const GgmlType t = GetParam();
  Generator g(11);
  const int64_t K = 256, N = 19;
  QMatrix w = QMatrix::quantize(mul(Tensor::randn({N, K}, g), Tensor::scalar(0.05)), t);
  Tensor bias = Tensor::randn({N}, g);
  Tensor base = Tensor::randn({2, K, 3}, g);
  Tensor x = base.transpose(1, 2);  // [2, 3, K], not contiguous
  ASSERT_FALSE(x.is_contiguous());
  Tensor y = qlinear(x, w, bias);
  ASSERT_EQ(y.shape(), (Shape{2, 3, N}));
  // The same numbers as the contiguous 2-D call plus the bias, bit for bit.
  Tensor y2 = qlinear(x.contiguous().reshape({6, K}), w);
  auto Y = y.to_vector<float>(), Y2 = y2.to_vector<float>(), B = bias.to_vector<float>();
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t n = 0; n < N; ++n) ASSERT_EQ(Y[size_t(r * N + n)], Y2[size_t(r * N + n)] + B[size_t(n)]);
  // And the reference handles the same arguments.
  Tensor ref = qlinear_reference(x, w, bias);
  ASSERT_EQ(ref.shape(), (Shape{2, 3, N}));
  auto R = ref.to_vector<float>();
  double scale = 0;
  for (float v : R) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < R.size(); ++i) ASSERT_NEAR(Y[i], R[i], 0.05 * scale);
}

TEST_P(QLinearType, OneAndTwoThreadsGiveIdenticalResults) {
  const GgmlType t = GetParam();
  const int prev = num_threads();
  Generator g(5);
  const int64_t K = 512, N = 300;
  QMatrix w = QMatrix::quantize(mul(Tensor::randn({N, K}, g), Tensor::scalar(0.05)), t);
  for (int64_t M : {1, 17}) {
    Tensor x = Tensor::randn({M, K}, g);
    for (int64_t dense_from : {int64_t(1) << 40, int64_t(1)}) {
      DenseFrom df(dense_from);
      set_num_threads(1);
      Tensor a = qlinear(x, w);
      set_num_threads(2);
      Tensor b = qlinear(x, w);
      set_num_threads(prev);
      auto A = a.to_vector<float>(), B = b.to_vector<float>();
      ASSERT_EQ(std::memcmp(A.data(), B.data(), A.size() * 4), 0)
          << ggml_type_name(t) << " M=" << M << " dense_from=" << dense_from;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QLinearType, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return ggml_type_name(i.param); });

TEST(QMatrix, ConcatRowsEqualsQuantizingTheStack) {
  Generator g(3);
  const int64_t K = 512;
  Tensor a = Tensor::randn({5, K}, g), b = Tensor::randn({7, K}, g), c = Tensor::randn({2, K}, g);
  Tensor all = concat({a, b, c}, 0);
  for (GgmlType t : kAllTypes) {
    QMatrix qa = QMatrix::quantize(a, t), qb = QMatrix::quantize(b, t), qc = QMatrix::quantize(c, t);
    QMatrix cat = QMatrix::concat_rows({&qa, &qb, &qc});
    QMatrix whole = QMatrix::quantize(all, t);
    ASSERT_EQ(cat.rows, 14);
    ASSERT_EQ(cat.cols, K);
    ASSERT_EQ(cat.type, t);
    ASSERT_EQ(cat.nbytes(), whole.nbytes());
    EXPECT_EQ(std::memcmp(cat.bytes.get(), whole.bytes.get(), cat.nbytes()), 0) << ggml_type_name(t);
  }
  QMatrix q8 = QMatrix::quantize(a, GgmlType::Q8_0), q4 = QMatrix::quantize(b, GgmlType::Q4_0);
  test::expect_error<ValueError>([&] { QMatrix::concat_rows({&q8, &q4}); }, "type and cols must match");
  QMatrix narrow = QMatrix::quantize(Tensor::randn({3, 256}, g), GgmlType::Q8_0);
  test::expect_error<ValueError>([&] { QMatrix::concat_rows({&q8, &narrow}); }, "type and cols must match");
  test::expect_error<ValueError>([&] { QMatrix::concat_rows({}); }, "no matrices");
}

// ---- interleaved Q8_0 (QMatrix::interleaved) ----

TEST(QMatrixInterleaved, LayoutRoundTripsAndDecodesLikeRowMajor) {
  Generator g(21);
  for (int64_t K : {32, 96, 768}) {
    QMatrix q = QMatrix::quantize(Tensor::randn({48, K}, g), GgmlType::Q8_0);
    ASSERT_TRUE(q.can_interleave());
    QMatrix p = q.interleaved();
    ASSERT_EQ(p.interleave, QMatrix::kInterleaveRows);
    ASSERT_EQ(p.nbytes(), q.nbytes());
    EXPECT_NE(std::memcmp(p.bytes.get(), q.bytes.get(), q.nbytes()), 0) << "the layout must change";
    EXPECT_FALSE(p.can_interleave());
    // Block b, quad j, row i of group 1 holds codes 4j.. of row 16 + i, offset by 128.
    const int64_t nb = K / 32;
    const uint8_t* g1 = p.bytes.get() + 16 * q.row_bytes();
    for (int64_t i : {0, 7, 15})
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t k = 0; k < 32; ++k)
          ASSERT_EQ(g1[b * 512 + (k / 4) * 64 + i * 4 + k % 4], uint8_t(q.row(16 + i)[b * 34 + 2 + k] ^ 0x80));
    ASSERT_EQ(std::memcmp(g1 + nb * 512 + 2 * 3, q.row(19), 2), 0);  // block 0's scale of row 16 + 3
    // Back to row-major: the original bytes; rows and dequantization identical bit for bit.
    QMatrix back = p.row_major();
    ASSERT_EQ(back.interleave, 0);
    EXPECT_EQ(std::memcmp(back.bytes.get(), q.bytes.get(), q.nbytes()), 0);
    std::vector<uint8_t> row(q.row_bytes());
    p.copy_row(37, row.data());
    EXPECT_EQ(std::memcmp(row.data(), q.row(37), row.size()), 0);
    auto A = p.dequantize().to_vector<float>(), B = q.dequantize().to_vector<float>();
    EXPECT_EQ(std::memcmp(A.data(), B.data(), A.size() * 4), 0);
    std::vector<float> part(size_t(5 * K));
    p.dequantize_rows(14, 5, part.data());  // across a group boundary
    EXPECT_EQ(std::memcmp(part.data(), B.data() + 14 * K, part.size() * 4), 0);
  }
}

TEST(QMatrixInterleaved, OnlyQ8_0InWholeGroups) {
  Generator g(22);
  QMatrix odd = QMatrix::quantize(Tensor::randn({24, 64}, g), GgmlType::Q8_0);
  QMatrix k4 = QMatrix::quantize(Tensor::randn({32, 256}, g), GgmlType::Q4_K);
  for (const QMatrix* q : {&odd, &k4}) {
    EXPECT_FALSE(q->can_interleave());
    QMatrix same = q->interleaved();
    EXPECT_EQ(same.interleave, 0);
    EXPECT_EQ(same.bytes.get(), q->bytes.get());
  }
  // A layout the kernels do not define is refused, not misread.
  QMatrix bad = k4;
  bad.interleave = 16;
  test::expect_error<ValueError>([&] { qlinear(Tensor::randn({1, 256}, g), bad); },
                                 "only Q8_0 in groups of 16 rows is defined");
}

TEST(QMatrixInterleaved, MatchesReferenceOnEveryPath) {
  Generator g(23);
  for (int64_t K : {32, 96, 768, 2048}) {
    QMatrix full = QMatrix::quantize(mul(Tensor::randn({304, K}, g), Tensor::scalar(0.05)), GgmlType::Q8_0);
    for (int64_t N : {16, 48, 304}) {
      QMatrix w = QMatrix::wrap(GgmlType::Q8_0, N, K, full.bytes, size_t(N) * full.row_bytes()).interleaved();
      ASSERT_EQ(w.interleave, 16);
      for (int64_t M : {1, 2, 3, 4, 5, 9}) check_case(Tensor::randn({M, K}, g), w, Path::Integer);
      check_case(Tensor::randn({20, K}, g), w, Path::Dense);
      for (const std::string& isa : cpu::qgemm_isas()) {
        UseIsa u(isa);
        SCOPED_TRACE(isa);
        for (int64_t M : {1, 3, 5}) check_case(Tensor::randn({M, K}, g), w, Path::Integer);
      }
    }
  }
}

TEST(QMatrixInterleaved, SameIntegerSumsAsRowMajorAndThreadIndependent) {
  if (simd_isas().empty()) GTEST_SKIP() << "no SIMD kernels for this CPU";
  Generator g(24);
  const int64_t N = 96;
  DenseFrom df(int64_t(1) << 40);
  const int prev = num_threads();
  for (int64_t K : {96, 768}) {
    QMatrix q = QMatrix::quantize(mul(Tensor::randn({N, K}, g), Tensor::scalar(0.05)), GgmlType::Q8_0);
    QMatrix p = q.interleaved();
    for (const std::string& isa : simd_isas())
      for (int64_t M : {1, 2, 3, 6}) {
        Tensor x = Tensor::randn({M, K}, g);
        Tensor fast, slow, one, rm;
        {
          UseIsa pt("portable");
          slow = qlinear(x, p);
        }
        {
          UseIsa u(isa);
          fast = qlinear(x, p);
          rm = qlinear(x, q);
          set_num_threads(1);
          one = qlinear(x, p);
          set_num_threads(prev);
        }
        // The SIMD and portable group kernels run the same integer sums and per-row float steps.
        auto F = fast.to_vector<float>(), S = slow.to_vector<float>(), O = one.to_vector<float>();
        auto R = rm.to_vector<float>();
        ASSERT_EQ(std::memcmp(F.data(), O.data(), F.size() * 4), 0) << isa << " M=" << M;
        double scale = 0;
        for (float v : R) scale = std::max(scale, double(std::fabs(v)));
        for (size_t i = 0; i < F.size(); ++i) {
          ASSERT_NEAR(F[i], S[i], 1e-5 * scale) << isa << " M=" << M << " i=" << i;
          ASSERT_NEAR(F[i], R[i], 1e-5 * scale) << isa << " M=" << M << " i=" << i;  // vs the row-major kernel
        }
      }
  }
}

TEST(QGemmIsa, SetsAreListedForcedAndChecked) {
  const std::vector<std::string> isas = cpu::qgemm_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.back(), "portable");
  for (const std::string& isa : isas) {
    UseIsa u(isa);
    EXPECT_EQ(cpu::qgemm_isa(), isa);
  }
  EXPECT_EQ(cpu::qgemm_force_isa(""), "");
  test::expect_error<ValueError>([] { cpu::qgemm_force_isa("avx1024"); },
                                 "[qgemm] qgemm_force_isa names the kernel set 'avx1024'; this CPU runs: ");
  EXPECT_FALSE(cpu::qgemm_force_portable(true));
  EXPECT_STREQ(cpu::qgemm_isa(), "portable");
  EXPECT_TRUE(cpu::qgemm_force_portable(false));
  EXPECT_EQ(cpu::qgemm_isa(), std::getenv("LMLAB_QGEMM_ISA") ? std::string(std::getenv("LMLAB_QGEMM_ISA")) : isas[0]);
#if defined(__x86_64__)
  // Every x86-64 build carries the AVX2 set; a CPU with AVX2, FMA and F16C runs it.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    EXPECT_NE(std::find(isas.begin(), isas.end(), "avx2"), isas.end());
  }
#endif
}

TEST(QMatrixInterleaved, ConcatKeepsOrDropsTheLayout) {
  Generator g(25);
  const int64_t K = 64;
  Tensor a = Tensor::randn({16, K}, g), b = Tensor::randn({32, K}, g);
  QMatrix qa = QMatrix::quantize(a, GgmlType::Q8_0), qb = QMatrix::quantize(b, GgmlType::Q8_0);
  QMatrix pa = qa.interleaved(), pb = qb.interleaved();
  QMatrix whole = QMatrix::quantize(concat({a, b}, 0), GgmlType::Q8_0);
  QMatrix both = QMatrix::concat_rows({&pa, &pb});
  EXPECT_EQ(both.interleave, 16);
  QMatrix want = whole.interleaved();
  EXPECT_EQ(std::memcmp(both.bytes.get(), want.bytes.get(), want.nbytes()), 0);
  QMatrix mixed = QMatrix::concat_rows({&pa, &qb});
  EXPECT_EQ(mixed.interleave, 0);
  EXPECT_EQ(std::memcmp(mixed.bytes.get(), whole.bytes.get(), whole.nbytes()), 0);
}

TEST(QEmbedding, RowsAreTheDequantizedTable) {
  Generator g(26);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{3, 0, 3, 17, 9, 1}, {2, 3});
  for (GgmlType t : kAllTypes) {
    QMatrix q = QMatrix::quantize(Tensor::randn({18, 256}, g), t);
    Tensor got = qembedding(q, ids), want = embedding(q.dequantize(), ids);
    ASSERT_EQ(got.shape(), (Shape{2, 3, 256}));
    auto G = got.to_vector<float>(), W = want.to_vector<float>();
    EXPECT_EQ(std::memcmp(G.data(), W.data(), G.size() * 4), 0) << ggml_type_name(t);
  }
  QMatrix p = QMatrix::quantize(Tensor::randn({32, 64}, g), GgmlType::Q8_0).interleaved();
  auto a = qembedding(p, ids).to_vector<float>(), b = embedding(p.dequantize(), ids).to_vector<float>();
  EXPECT_EQ(a, b);  // an interleaved table works too
  QMatrix q = QMatrix::quantize(Tensor::randn({18, 64}, g), GgmlType::Q8_0);
  test::expect_error<IndexError>([&] { qembedding(q, Tensor::from_vector(std::vector<int64_t>{2, 18}, {2})); },
                                 "[qembedding] id 18 out of range [0, 18) at position 1");
  test::expect_error<IndexError>([&] { qembedding(q, Tensor::from_vector(std::vector<int32_t>{-1}, {1})); },
                                 "id -1 out of range");
  test::expect_error<DTypeError>([&] { qembedding(q, Tensor::zeros({2})); }, "ids");
}

TEST(QMatrix, QuantizeChecksBlockMultipleAndAcceptsViews) {
  Generator g(4);
  test::expect_error<ValueError>([&] { QMatrix::quantize(Tensor::randn({4, 100}, g), GgmlType::Q4_K); },
                                 "[4, 100] matrix cannot be q4_K: cols 100 is not a multiple of the block size 256");
  test::expect_error<ValueError>([&] { QMatrix::quantize(Tensor::randn({2, 48}, g), GgmlType::Q8_0); },
                                 "cols 48 is not a multiple of the block size 32");
  test::expect_error<ShapeError>([&] { QMatrix::quantize(Tensor::randn({256}, g), GgmlType::Q8_0); }, "2-D");
  // A transposed (non-contiguous) bf16 tensor quantizes like its contiguous f32 copy.
  Tensor w = Tensor::randn({256, 6}, g).transpose(0, 1);
  QMatrix a = QMatrix::quantize(w.to(DType::BF16), GgmlType::Q6_K);
  QMatrix b = QMatrix::quantize(w.to(DType::BF16).to(DType::F32).contiguous(), GgmlType::Q6_K);
  ASSERT_EQ(a.nbytes(), b.nbytes());
  EXPECT_EQ(std::memcmp(a.bytes.get(), b.bytes.get(), a.nbytes()), 0);
}

TEST(QMatrix, WrapChecksSizeAndSharesBytes) {
  Generator g(8);
  QMatrix q = QMatrix::quantize(Tensor::randn({3, 512}, g), GgmlType::Q4_K);
  ASSERT_EQ(q.nbytes(), size_t(3 * 2 * 144));
  test::expect_error<ValueError>([&] { QMatrix::wrap(GgmlType::Q4_K, 3, 512, q.bytes, q.nbytes() - 1); },
                                 "q4_K [3, 512] matrix takes 864 bytes, got 863");
  test::expect_error<ValueError>([&] { QMatrix::wrap(GgmlType::Q4_K, 3, 500, q.bytes, q.nbytes()); },
                                 "cols 500 is not a multiple of the block size 256");
  test::expect_error<DTypeError>([&] { QMatrix::wrap(GgmlType(7), 3, 512, q.bytes, q.nbytes()); }, "unknown ggml type 7");
  QMatrix v = QMatrix::wrap(GgmlType::Q4_K, 3, 512, q.bytes, q.nbytes());
  EXPECT_EQ(v.bytes.get(), q.bytes.get());
  Tensor x = Tensor::randn({2, 512}, g);
  auto A = qlinear(x, q).to_vector<float>(), B = qlinear(x, v).to_vector<float>();
  EXPECT_EQ(A, B);
  // dequantize() is the ggml row decoder applied to every row.
  std::vector<float> row(512);
  ggml_dequantize(GgmlType::Q4_K, q.row(2), row.data(), 512);
  auto D = q.dequantize().to_vector<float>();
  EXPECT_TRUE(std::equal(row.begin(), row.end(), D.begin() + 2 * 512));
}

TEST(QLinear, ArgumentErrors) {
  Generator g(9);
  QMatrix w = QMatrix::quantize(Tensor::randn({4, 64}, g), GgmlType::Q8_0);
  test::expect_error<ShapeError>([&] { qlinear(Tensor::randn({2, 32}, g), w); }, "expected 64 features");
  test::expect_error<DTypeError>([&] { qlinear(Tensor::randn({2, 64}, g, DType::F64), w); }, "x must be f32");
  test::expect_error<ShapeError>([&] { qlinear(Tensor::randn({2, 64}, g), w, Tensor::randn({5}, g)); },
                                 "bias must be f32 [4]");
  Tensor xg = Tensor::randn({2, 64}, g);
  xg.set_requires_grad(true);
  test::expect_error<ValueError>([&] { qlinear(xg, w); }, "inference only");
  {
    NoGrad ng;  // nothing would be recorded anyway: allowed
    EXPECT_EQ(qlinear(xg, w).shape(), (Shape{2, 4}));
  }
  // Reference mode routes qlinear to the reference.
  Tensor x = Tensor::randn({3, 64}, g);
  Tensor r = qlinear_reference(x, w), m;
  {
    ReferenceMode rm;
    m = qlinear(x, w);
  }
  EXPECT_EQ(r.to_vector<float>(), m.to_vector<float>());
}
