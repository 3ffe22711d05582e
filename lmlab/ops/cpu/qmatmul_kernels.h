// Kernel sets for quantized products (ops/qmatmul.h): a portable C++ one, always compiled, and on
// x86-64 an AVX-512 VNNI one and an AVX2 + FMA + F16C one, each compiled for its instructions
// whatever the build's -march and used only on a CPU that has them (chosen at run time in
// qmatmul.cpp). All compute the same integer block sums from the same quantized activations, so
// they differ only in float rounding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lmlab::cpu::qk {

inline constexpr int64_t kQ8Block = 32;    // activation blocks for Q8_0 / Q4_0 weights
inline constexpr int64_t kQ8KBlock = 256;  // activation blocks (Q8_K) for Q4_K / Q6_K weights
inline constexpr int kMaxTileRows = 4;     // activation rows sharing one pass over a weight row

// Activation rows quantized to 8 bits, one row per `stride` bytes (64-byte aligned), laid out as
// arrays rather than ggml's interleaved blocks so that the int8 values are contiguous for SIMD:
//   int8 qs[K] | float d[K / block] | int16 bsums[...]
// bsums: for the Q8_K family (block 256) the sums of each 16 codes (K / 16 of them), for the Q8_0
// family (block 32) the sum of each block's codes (K / 32; the interleaved Q8_0 kernels store
// weights offset by 128 and subtract 128 * bsum).
// Value k is qs[k] * d[k / block]; |qs| <= 127 always (the AVX-512 kernels negate them). The
// scales stay f32 (llama.cpp stores Q8_0 activation scales as f16; f32 is exact and costs nothing
// since the activations never leave this module).
struct QRows {
  const uint8_t* base = nullptr;
  size_t stride = 0;
  int64_t K = 0, block = 0;
  const int8_t* qs(int64_t m) const { return reinterpret_cast<const int8_t*>(base + size_t(m) * stride); }
  const float* d(int64_t m) const { return reinterpret_cast<const float*>(base + size_t(m) * stride + size_t(K)); }
  const int16_t* bsums(int64_t m) const {
    return reinterpret_cast<const int16_t*>(base + size_t(m) * stride + size_t(K) + 4 * size_t(K / block));
  }
  static size_t row_stride(int64_t K, int64_t block) {
    size_t b = size_t(K) + 4 * size_t(K / block) + 2 * size_t(block == kQ8KBlock ? K / 16 : K / block);
    return (b + 63) / 64 * 64;
  }
};

// Quantizes one f32 row of K values into `dst` (a QRows row). Shared by both kernel sets, so they
// see identical activations.
void quantize_act_row(const float* x, int64_t K, int64_t block, uint8_t* dst);

// y[i * ldy] = dot(weight row w (K values), activation row m0 + i) for i < nx <= kMaxTileRows.
using QTileFn = void (*)(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy);
// Interleaved Q8_0 (QMatrix::interleave == 16): y[i * ldy + r] = dot(row r of the 16-row group at
// `group`, activation row m0 + i) for r < 16, i < nx <= kMaxTileRows.
using QGroupFn = void (*)(const uint8_t* group, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy);
// Dot of one dense weight row (f32, bf16 or f16, K values) with an f32 vector.
using DotFn = float (*)(const uint8_t* w, const float* x, int64_t K);

struct KernelSet {
  const char* name;
  QTileFn q4_0, q8_0, q4_K, q6_K;
  DotFn f32, bf16, f16;
  QGroupFn q8_0x16;
};

const KernelSet& portable_kernels();
// nullptr when the set is not compiled for this target (not x86-64) or this CPU lacks its
// instructions: AVX-512 F/BW/DQ/VL/VNNI (+ AVX2/FMA/F16C), or AVX2/FMA/F16C.
const KernelSet* avx512_kernels();
const KernelSet* avx2_kernels();

// Q4_K: the 12 packed bytes to 8 six-bit scales (out[0..7]) and 8 mins (out[8..15]). Bytes 0-3 /
// 4-7 carry scales / mins 0-3 in their low 6 bits and the top 2 bits of scales / mins 4-7; bytes
// 8-11 the low 4 bits of those (scale in the low nibble, min in the high one). Done on 32-bit words.
inline void unpack_q4_K_scales(const uint8_t* packed, uint8_t out[16]) {
  uint32_t u[3];
  std::memcpy(u, packed, 12);
  const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
  uint32_t r[4];
  r[0] = u[0] & low6;                                         // scales 0-3
  r[1] = (u[2] & low4) | (((u[0] >> 6) & low2) << 4);         // scales 4-7
  r[2] = u[1] & low6;                                         // mins 0-3
  r[3] = ((u[2] >> 4) & low4) | (((u[1] >> 6) & low2) << 4);  // mins 4-7
  std::memcpy(out, r, 16);
}

}  // namespace lmlab::cpu::qk
