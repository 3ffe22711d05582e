// Matmul benchmarks. matmul_f32_1024: lmlab matmul vs raw OpenBLAS cblas_sgemm (the machine's
// measured f32 GEMM peak) at 1024^3. matmul_bf16_2048: lmlab bf16 matmul (oneDNN) vs lmlab f32
// matmul at 2048^3. Prints RESULT lines (GFLOP/s) for bench/run.sh.
#include <cblas.h>

#include <cmath>
#include <cstdio>

#include "bench/bench_util.h"
#include "lmlab/lmlab.h"

using namespace lmlab;
using bench::result;

int main() {
  Generator g(1);
  {
    const int64_t n = 1024;
    Tensor a = Tensor::randn({n, n}, g), b = Tensor::randn({n, n}, g);
    Tensor c = Tensor::empty({n, n});
    double flops = 2.0 * double(n) * double(n) * double(n);
    auto [t_ours, t_peer] = bench::median_time_pair(
        [&] { Tensor y = matmul(a, b); },
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.0f, a.data<float>(),
                      int(n), b.data<float>(), int(n), 0.0f, c.data<float>(), int(n));
        },
        3, 25);
    result("matmul_f32_1024.ours", flops / t_ours / 1e9, "GFLOP/s");
    result("matmul_f32_1024.peer", flops / t_peer / 1e9, "GFLOP/s");
  }
  {
    const int64_t n = 2048;
    Tensor a = Tensor::randn({n, n}, g), b = Tensor::randn({n, n}, g);
    Tensor ab = a.to(DType::BF16), bb = b.to(DType::BF16);
    double flops = 2.0 * double(n) * double(n) * double(n);
    auto [t_bf16, t_f32] = bench::median_time_pair([&] { Tensor y = matmul(ab, bb, DType::F32); },
                                                    [&] { Tensor y = matmul(a, b); }, 2, 9);
    result("matmul_bf16_2048.ours", flops / t_bf16 / 1e9, "GFLOP/s");
    result("matmul_bf16_2048.peer", flops / t_f32 / 1e9, "GFLOP/s");
    // accuracy of the bf16 product against f32 (relative Frobenius error)
    Tensor y16 = matmul(ab, bb, DType::F32), y32 = matmul(a, b);
    double num = 0, den = 0;
    auto v16 = y16.to_vector<float>(), v32 = y32.to_vector<float>();
    for (size_t i = 0; i < v16.size(); ++i) {
      num += double(v16[i] - v32[i]) * double(v16[i] - v32[i]);
      den += double(v32[i]) * double(v32[i]);
    }
    result("matmul_bf16_2048.rel_error", std::sqrt(num / den), "ratio");
    std::printf("INFO onednn_kernel %s\n", cpu::onednn_last_impl());
  }
  return 0;
}
