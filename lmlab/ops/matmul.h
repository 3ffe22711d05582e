// Matrix products (torch.matmul semantics): a [..., M, K] @ b [..., K, N] -> [..., M, N] with
// batch broadcasting; 1-D operands are promoted and the added dim removed. f32 runs on OpenBLAS
// cblas_sgemm, f64 on cblas_dgemm, bf16 on oneDNN (AMX / AVX512-BF16 when the CPU has them, f32
// accumulation), or where oneDNN has no bf16 kernel for the CPU (AVX2), f32 on OpenBLAS over the
// exactly widened operands (cpu::bf16_gemm_path()). Transposed views are passed to the GEMM as transposes, never copied.
#pragma once
#include <optional>
#include <string>

#include "lmlab/core/tensor.h"

namespace lmlab {

// `out_dtype` only applies to bf16 inputs: bf16 (default) or f32 (keep the f32 accumulator).
Tensor matmul(const Tensor& a, const Tensor& b, std::optional<DType> out_dtype = std::nullopt);
// x [..., K] @ w[N, K]^T (+ bias [N]) -> [..., N]   (torch.nn.functional.linear)
// Under AutocastBF16, f32 operands are cast to bf16 for the GEMM (AMX through oneDNN) with f32
// output; gradients flow back through the casts to the f32 master tensors.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// Thread-local mixed-precision switch for linear() (torch.autocast(dtype=bfloat16) for matmuls).
bool autocast_bf16();
class AutocastBF16 {
 public:
  explicit AutocastBF16(bool on = true);
  ~AutocastBF16();
  AutocastBF16(const AutocastBF16&) = delete;
  AutocastBF16& operator=(const AutocastBF16&) = delete;

 private:
  bool prev_;
};

namespace cpu {
// Raw GEMM entry points (row-major), used by matmul and by fused kernels.
void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Name of the oneDNN kernel implementation chosen for the last bf16 matmul primitive created.
const char* onednn_last_impl();

// How bf16 products run in this process, decided once at first use: oneDNN when it has a bf16
// matmul for this CPU, else f32 on OpenBLAS over exactly widened operands (also used for any single
// shape oneDNN refuses). LMLAB_BF16_GEMM=auto (default) | onednn (refusal is an error) | f32.
struct Bf16GemmPath {
  bool onednn = false;
  std::string impl;  // oneDNN's implementation name for a probe shape, when onednn
  std::string why;   // the reason, with oneDNN's effective ISA
};
const Bf16GemmPath& bf16_gemm_path();
// True when bf16 products go to oneDNN now (the path above and no forcing).
bool bf16_gemm_uses_onednn();
// Forces the f32 path for every bf16 product (tests of the fallback); returns the previous setting.
bool bf16_gemm_force_f32(bool on);
struct Bf16GemmStats {
  int64_t refused = 0;       // shapes/layouts oneDNN refused, run in f32 instead
  std::string last_refusal;  // the last one, with oneDNN's message
};
Bf16GemmStats bf16_gemm_stats();
}  // namespace cpu

}  // namespace lmlab
