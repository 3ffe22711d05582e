// ggml tensor types and block quantization (F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K) with the byte
// layouts of llama.cpp's ggml/src/ggml-common.h; the Q4_0/Q8_0 quantizers match ggml-quants.c's
// reference (round-to-nearest) ones, the Q4_K/Q6_K quantizers are simpler min/max ones (same format,
// somewhat larger error than llama.cpp's iterative search). Little-endian hosts only.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lmlab {

enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q6_K = 14, BF16 = 30 };

// True when `t` is one of the types above.
bool ggml_type_known(uint32_t t);
// Values per block (1 for F32/F16/BF16, 32 for Q4_0/Q8_0, 256 for Q4_K/Q6_K).
int64_t ggml_block_size(GgmlType t);
// Bytes per block.
size_t ggml_type_size(GgmlType t);
// "f32", "f16", "q4_0", "q8_0", "q4_K", "q6_K", "bf16" (llama.cpp's names); "unknown" otherwise.
const char* ggml_type_name(GgmlType t);
const char* ggml_type_name(uint32_t t);
// Bytes of `n` values (n must be a multiple of the block size; throws ValueError otherwise).
size_t ggml_row_size(GgmlType t, int64_t n);
inline bool ggml_is_quantized(GgmlType t) {
  return t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::BF16;
}

inline constexpr int64_t kQK4_0 = 32, kQK8_0 = 32, kQK_K = 256;
inline constexpr size_t kQ4_0Bytes = 2 + 16, kQ8_0Bytes = 2 + 32;
inline constexpr size_t kQ4_KBytes = 2 + 2 + 12 + 128, kQ6_KBytes = 128 + 64 + 16 + 2;

// Row kernels: `n` values, a multiple of the block size (checked with LMLAB_ASSERT).
void dequantize_row_q4_0(const void* blocks, float* out, int64_t n);
void dequantize_row_q8_0(const void* blocks, float* out, int64_t n);
void dequantize_row_q4_K(const void* blocks, float* out, int64_t n);
void dequantize_row_q6_K(const void* blocks, float* out, int64_t n);
void quantize_row_q4_0(const float* x, void* blocks, int64_t n);
void quantize_row_q8_0(const float* x, void* blocks, int64_t n);
void quantize_row_q4_K(const float* x, void* blocks, int64_t n);
void quantize_row_q6_K(const float* x, void* blocks, int64_t n);

// Any type (F32/F16/BF16 included) to and from f32; throws ValueError when n is not a multiple of
// the block size.
void ggml_dequantize(GgmlType t, const void* src, float* out, int64_t n);
void ggml_quantize(GgmlType t, const float* x, void* dst, int64_t n);

}  // namespace lmlab
