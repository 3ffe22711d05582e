// The bf16 / f16 GEMM paths over odd shapes, against the f64 reference: dense bf16 matmul (oneDNN,
// or f32 on OpenBLAS where oneDNN has no bf16 kernel or refuses a layout) and the half-precision and
// quantized weight paths of qlinear (decode dot kernels, integer kernels, dequantized panels; the
// tied head over a bf16/f16 embedding is a qlinear over its table). Every case runs on the path this
// CPU chose and on the forced f32 path. CTest runs this file a second time under
// ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN without bf16 kernels, what a CPU without AVX-512 gets) with
// LMLAB_EXPECT_BF16_PATH=f32, so the fallback users get is tested on every change.
#include <gtest/gtest.h>

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

struct ForceF32 {
  bool prev;
  explicit ForceF32(bool on) : prev(cpu::bf16_gemm_force_f32(on)) {}
  ~ForceF32() { cpu::bf16_gemm_force_f32(prev); }
};

// a [..., M, K] @ b [..., K, N] in f64 over the values as stored (bf16 widened exactly), plus the
// magnitude sum |a| @ |b| that bounds the rounding error.
struct Ref {
  std::vector<double> y, mag;
};
Ref reference(const Tensor& a, const Tensor& b) {
  ReferenceMode rm;
  Tensor a64 = a.to(DType::F64), b64 = b.to(DType::F64);
  return {matmul(a64, b64).to_vector<double>(), matmul(abs(a64), abs(b64)).to_vector<double>()};
}

// f32 accumulation of exact products: |err| <= (K + 2) u sum|a||b|; bf16 output adds half an ulp
// of bf16 (2^-9 relative), taken as 2^-8.
void expect_close(const Tensor& y, const Ref& r, int64_t K, const std::string& what) {
  ASSERT_EQ(size_t(y.numel()), r.y.size()) << what;
  auto v = y.to_vector<double>();
  const double u = std::ldexp(1.0, -24);
  const bool half = y.dtype() == DType::BF16;
  for (size_t i = 0; i < v.size(); ++i) {
    ASSERT_TRUE(std::isfinite(v[i])) << what << " [" << i << "] = " << v[i];
    double bound = double(K + 2) * 2 * u * r.mag[i] + (half ? std::ldexp(std::abs(r.y[i]), -8) : 0.0) + 1e-30;
    ASSERT_LE(std::abs(v[i] - r.y[i]), bound) << what << " [" << i << "] = " << v[i] << ", reference " << r.y[i];
  }
}

Tensor bf16_randn(Generator& g, const Shape& s) { return Tensor::randn(s, g).to(DType::BF16); }

// The layouts a product meets: plain, transposed views (a Linear weight is b = W^T), offset and
// strided views (narrowed from a larger matrix), batched with broadcast, batched non-uniform.
struct Operands {
  std::string name;
  Tensor a, b;
};
std::vector<Operands> layouts(Generator& g, int64_t M, int64_t K, int64_t N) {
  std::vector<Operands> v;
  v.push_back({"plain", bf16_randn(g, {M, K}), bf16_randn(g, {K, N})});
  v.push_back({"b=W^T", bf16_randn(g, {M, K}), bf16_randn(g, {N, K}).transpose(0, 1)});
  v.push_back({"a^T view", bf16_randn(g, {K, M}).transpose(0, 1), bf16_randn(g, {K, N})});
  v.push_back({"offset strided", bf16_randn(g, {M + 3, K + 5}).narrow(0, 2, M).narrow(1, 3, K),
               bf16_randn(g, {K + 2, N + 7}).narrow(0, 1, K).narrow(1, 4, N)});
  v.push_back({"batched, b broadcast", bf16_randn(g, {2, M, K}), bf16_randn(g, {K, N})});
  v.push_back({"batched, strided batches", bf16_randn(g, {3, M, K + 1}).narrow(2, 1, K),
               bf16_randn(g, {3, K, N + 2}).narrow(2, 0, N)});
  return v;
}

}  // namespace

TEST(Bf16Gemm, PathIsReportedAndMatchesTheEnvironment) {
  const auto& p = cpu::bf16_gemm_path();
  EXPECT_FALSE(p.why.empty());
  if (p.onednn) {
    EXPECT_FALSE(p.impl.empty());
  }
  if (const char* want = std::getenv("LMLAB_EXPECT_BF16_PATH"); want && *want) {
    EXPECT_EQ(std::string(p.onednn ? "onednn" : "f32"), want) << p.why;
  }
  // Forcing the fallback is visible and restores.
  {
    ForceF32 f(true);
    EXPECT_FALSE(cpu::bf16_gemm_uses_onednn());
  }
  EXPECT_EQ(cpu::bf16_gemm_uses_onednn(), p.onednn);
}

TEST(Bf16Gemm, DenseOddShapesMatchF64Reference) {
  Generator g(2026);
  int64_t cases = 0;
  for (int64_t M : {1, 2, 7, 16, 17, 33})
    for (int64_t K : {1, 13, 32, 61})
      for (int64_t N : {1, 5, 64, 67})
        for (auto& op : layouts(g, M, K, N)) {
          Ref r = reference(op.a, op.b);
          for (bool force : {false, true}) {
            ForceF32 f(force);
            for (DType out : {DType::F32, DType::BF16}) {
              std::string what = str_cat("M=", M, " K=", K, " N=", N, " ", op.name, " -> ", dtype_name(out),
                                          force ? " (forced f32)" : "");
              Tensor y = matmul(op.a, op.b, out);
              ASSERT_EQ(y.dtype(), out) << what;
              expect_close(y, r, K, what);
              ++cases;
            }
          }
        }
  EXPECT_EQ(cases, 6 * 4 * 4 * 6 * 2 * 2);
}

// The fallback really runs the f32 product of the widened operands: bit for bit what f32 matmul gives.
TEST(Bf16Gemm, ForcedF32IsTheWidenedF32Product) {
  Generator g(7);
  ForceF32 f(true);
  for (auto& op : layouts(g, 17, 61, 67)) {
    auto y = matmul(op.a, op.b, DType::F32).to_vector<float>();
    auto w = matmul(op.a.to(DType::F32), op.b.to(DType::F32)).to_vector<float>();
    ASSERT_EQ(y.size(), w.size());
    EXPECT_EQ(std::memcmp(y.data(), w.data(), y.size() * 4), 0) << op.name;
  }
}

// Gradients through a bf16 product on both paths (the autograd wiring feeds transposed views back in).
TEST(Bf16Gemm, BackwardOnBothPaths) {
  Generator g(9);
  Tensor a0 = Tensor::randn({13, 29}, g), b0 = Tensor::randn({29, 7}, g);
  for (bool force : {false, true}) {
    ForceF32 f(force);
    Tensor a = a0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
    Tensor y = matmul(a.to(DType::BF16), b.to(DType::BF16), DType::F32);
    sum(y).backward();
    // d/da sum(a b) = 1 b^T, with b rounded to bf16 (and the incoming ones exact)
    Tensor ga = matmul(Tensor::ones({13, 7}), b0.to(DType::BF16).to(DType::F32).transpose(0, 1));
    auto r = compare("grad a", a.grad(), ga, 0.05, 2e-2);
    EXPECT_TRUE(r.ok) << r.message << (force ? " (forced f32)" : "");
  }
}

// Weights in half precision or quantized (QMatrix) over odd shapes and activation views: decode
// (M = 1 dot kernels), small M (integer kernels), large M (dequantized panels: bf16 on oneDNN, or
// f32 on OpenBLAS), on both bf16 paths, against the f64 product with the dequantized weight.
TEST(Bf16Gemm, HalfAndQuantizedWeightsOddShapes) {
  Generator g(31);
  struct TypeCase {
    GgmlType t;
    std::vector<int64_t> Ks;
  };
  const std::vector<TypeCase> types = {{GgmlType::BF16, {1, 13, 61, 96}}, {GgmlType::F16, {1, 13, 61, 96}},
                                       {GgmlType::Q8_0, {32, 96}},          {GgmlType::Q4_0, {32, 96}},
                                       {GgmlType::Q4_K, {256}},             {GgmlType::Q6_K, {256}}};
  for (const auto& tc : types)
    for (int64_t K : tc.Ks)
      for (int64_t N : {1, 7, 16, 33, 48}) {
        QMatrix w = QMatrix::quantize(mul(Tensor::randn({N, K}, g), Tensor::scalar(0.1)), tc.t);
        const QMatrix wi = w.interleaved();  // the same bytes when the layout does not apply
        Tensor wd = w.dequantize();
        auto W = wd.to_vector<float>();
        const int64_t blk = (tc.t == GgmlType::Q4_K || tc.t == GgmlType::Q6_K) ? 256 : 32;
        const bool quant = tc.t != GgmlType::BF16 && tc.t != GgmlType::F16;
        for (int64_t M : {1, 2, 7, 16, 17, 40}) {
          // activations: a strided view (every other row of a wider buffer, offset columns)
          Tensor xb = Tensor::randn({2 * M, K + 3}, g);
          Tensor x = xb.slice(0, 0, 2 * M, 2).narrow(1, 3, K);
          auto X = x.contiguous().to_vector<float>();
          for (int form = 0; form < (w.can_interleave() ? 2 : 1); ++form)
            for (bool force : {false, true}) {
              const QMatrix& q = form ? wi : w;
              ForceF32 f(force);
              auto Y = qlinear(x, q).to_vector<float>();
              ASSERT_EQ(Y.size(), size_t(M * N));
              for (int64_t m = 0; m < M; ++m) {
                const float* xr = X.data() + m * K;
                for (int64_t n = 0; n < N; ++n) {
                  double ref = 0, mag = 0, qerr = 0;
                  for (int64_t k = 0; k < K; ++k) {
                    double wk = W[size_t(n * K + k)], xk = xr[k];
                    ref += wk * xk;
                    mag += std::abs(wk * xk);
                    if (quant) {
                      double amax = 0;
                      int64_t b0 = k / blk * blk;
                      for (int64_t j = b0; j < std::min(K, b0 + blk); ++j) amax = std::max(amax, double(std::abs(xr[j])));
                      qerr += std::abs(wk) * amax / 127.0;
                    }
                  }
                  // f32 accumulation, plus activation rounding: to bf16 on the oneDNN panels (2^-8
                  // relative), or 8-bit block quantization on the integer kernels (amax / 254 each).
                  double bound = double(K + 2) * std::ldexp(mag, -23) + std::ldexp(mag, -7) + qerr + 1e-6;
                  double yv = Y[size_t(m * N + n)];
                  ASSERT_TRUE(std::isfinite(yv));
                  ASSERT_LE(std::abs(yv - ref), bound)
                      << ggml_type_name(tc.t) << (q.interleave ? " interleaved" : "") << " M=" << M << " N=" << N
                      << " K=" << K << (force ? " (forced f32)" : "") << " y[" << m << "," << n << "] = " << yv
                      << ", reference " << ref;
                }
              }
            }
        }
      }
}

// A tied head over a half-precision embedding: the same table serves the lookup and, transposed, the
// output projection (qlinear over the table), for prompt-sized M on both paths.
TEST(Bf16Gemm, TiedHeadOverHalfPrecisionEmbedding) {
  Generator g(41);
  const int64_t V = 601, C = 97;
  Tensor table = mul(Tensor::randn({V, C}, g), Tensor::scalar(0.2));
  for (GgmlType t : {GgmlType::BF16, GgmlType::F16}) {
    QMatrix q = QMatrix::quantize(table, t);
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{0, 600, 17, 5, 5, 333, 42, 1, 599, 100, 7, 8, 9, 10, 11, 12,
                                                           13, 14, 15},
                                     {19});
    Tensor h = qembedding(q, ids);
    ASSERT_EQ(h.shape(), (Shape{19, C}));
    Tensor ref = qlinear_reference(h, q);
    for (bool force : {false, true}) {
      ForceF32 f(force);
      for (int64_t rows : {1, 2, 19}) {
        Tensor x = h.narrow(0, 0, rows);
        auto y = qlinear(x, q).to_vector<float>(), r = ref.narrow(0, 0, rows).contiguous().to_vector<float>();
        double scale = lmlab::test::max_abs(r);
        EXPECT_LE(lmlab::test::max_abs_diff(y, r), 0.01 * scale)
            << ggml_type_name(t) << " rows=" << rows << (force ? " (forced f32)" : "");
      }
    }
  }
}
