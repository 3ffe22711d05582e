// Portable quantized dot products (plain C++, any target) and the activation quantizer both kernel
// sets share. Per weight block the integer sum of weight codes times activation codes is formed
// exactly, then scaled once in float: the same integers the AVX-512 kernels compute.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "lmlab/core/dtype.h"
#include "lmlab/core/quant.h"
#include "lmlab/ops/cpu/qmatmul_kernels.h"

namespace lmlab::cpu::qk {

void quantize_act_row(const float* x, int64_t K, int64_t block, uint8_t* dst) {
  int8_t* qs = reinterpret_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(dst + K);
  for (int64_t b = 0; b < K / block; ++b) {
    const float* xb = x + b * block;
    float amax = 0.f;
    for (int64_t j = 0; j < block; ++j) amax = std::max(amax, std::fabs(xb[j]));
    // Symmetric: +-amax map to +-127, so a code is never -128 (the kernels negate codes).
    float id = amax > 0.f ? 127.f / amax : 0.f;
    d[b] = amax / 127.f;
    for (int64_t j = 0; j < block; ++j) {
      // fmax/fmin also send NaN to a finite code instead of an undefined conversion
      float v = std::fmin(std::fmax(xb[j] * id, -127.f), 127.f);
      qs[b * block + j] = int8_t(std::nearbyint(v));
    }
  }
  const int64_t span = block == kQ8KBlock ? 16 : block;  // values per bsum (qmatmul_kernels.h)
  int16_t* bs = reinterpret_cast<int16_t*>(dst + K + 4 * (K / block));
  for (int64_t g = 0; g < K / span; ++g) {
    int s = 0;
    for (int64_t j = 0; j < span; ++j) s += qs[span * g + j];
    bs[g] = int16_t(s);
  }
}

namespace {

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Signed x signed byte dot product. GCC 12.2 with -march=native (AVX512-VNNI) vectorizes the plain
// loop into vpdpbusd, which reads its first operand as unsigned, and gets wrong sums (seen in
// this file's object code); so the loop is kept out of the vectorizer.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-tree-vectorize")))
#endif
int dot_s8(const int8_t* a, const int8_t* b, int n) {
  int s = 0;
  for (int j = 0; j < n; ++j) s += int(a[j]) * int(b[j]);
  return s;
}

// Q8_0 / Q4_0 weights (blocks of 32, f16 scale) against Q8_0-style activations.
template <bool kQ4>
void tile_q4_0_q8_0(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy) {
  const size_t bytes = kQ4 ? kQ4_0Bytes : kQ8_0Bytes;
  for (int i = 0; i < nx; ++i) {
    const int8_t* xq = x.qs(m0 + i);
    const float* xd = x.d(m0 + i);
    const uint8_t* b = w;
    float acc = 0.f;
    for (int64_t ib = 0; ib < K / 32; ++ib, b += bytes, xq += 32) {
      int isum = 0;
      if constexpr (kQ4) {
        for (int j = 0; j < 16; ++j) {
          isum += (int(b[2 + j] & 0xF) - 8) * xq[j];
          isum += (int(b[2 + j] >> 4) - 8) * xq[j + 16];
        }
      } else {
        isum = dot_s8(reinterpret_cast<const int8_t*>(b + 2), xq, 32);
      }
      acc += (f16_at(b) * xd[ib]) * float(isum);
    }
    y[i * ldy] = acc;
  }
}

// Q4_K: per sub-block s of 32, sum_l q*x, weighted by the 6-bit scale; the min term
// dmin * m_s * sum(x) comes from the activation's 16-value sums.
void tile_q4_K(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy) {
  for (int i = 0; i < nx; ++i) {
    const int8_t* xq = x.qs(m0 + i);
    const float* xd = x.d(m0 + i);
    const int16_t* bs = x.bsums(m0 + i);
    const uint8_t* b = w;
    float acc = 0.f;
    for (int64_t ib = 0; ib < K / kQK_K; ++ib, b += kQ4_KBytes, xq += kQK_K, bs += 16) {
      uint8_t sm[16];
      unpack_q4_K_scales(b + 4, sm);
      const uint8_t* q = b + 16;
      int isum = 0, msum = 0;
      for (int s = 0; s < 8; ++s) {
        const uint8_t* qc = q + 32 * (s / 2);
        int p = 0;
        for (int l = 0; l < 32; ++l) p += int(s % 2 ? qc[l] >> 4 : qc[l] & 0xF) * xq[32 * s + l];
        isum += int(sm[s]) * p;
        msum += int(sm[8 + s]) * (bs[2 * s] + bs[2 * s + 1]);
      }
      acc += (f16_at(b) * xd[ib]) * float(isum) - (f16_at(b + 2) * xd[ib]) * float(msum);
    }
    y[i * ldy] = acc;
  }
}

// Q6_K: codes q in 0..63 stand for q - 32; sum_l (q - 32) x = sum_l q x - 32 * bsum.
void tile_q6_K(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy) {
  for (int i = 0; i < nx; ++i) {
    const int8_t* xq = x.qs(m0 + i);
    const float* xd = x.d(m0 + i);
    const int16_t* bs = x.bsums(m0 + i);
    const uint8_t* b = w;
    float acc = 0.f;
    for (int64_t ib = 0; ib < K / kQK_K; ++ib, b += kQ6_KBytes, xq += kQK_K, bs += 16) {
      const uint8_t* ql = b;
      const uint8_t* qh = b + 128;
      const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
      int isum = 0;
      for (int s = 0; s < 16; ++s) {
        int p = 0;
        for (int l16 = 0; l16 < 16; ++l16) {
          int v = 16 * s + l16, h = v / 128, r = v % 128, g = r / 32, l = r % 32;
          uint8_t lo = ql[64 * h + l + 32 * (g & 1)];
          int q = (g < 2 ? lo & 0xF : lo >> 4) | (((qh[32 * h + l] >> (2 * g)) & 3) << 4);
          p += q * xq[v];
        }
        isum += int(sc[s]) * (p - 32 * bs[s]);
      }
      acc += (f16_at(b + 208) * xd[ib]) * float(isum);
    }
    y[i * ldy] = acc;
  }
}

// Interleaved Q8_0 group (qmatmul.h): codes stored as q + 128, so per block
// sum_k q x = sum_k (q + 128) x - 128 * bsum. Same integer sums and the same per-row order of
// float operations as the AVX-512 kernel. Kept out of the vectorizer for the reason dot_s8 is.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
void group_q8_0x16(const uint8_t* g, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy) {
  const int64_t nb = K / 32;
  const uint8_t* scales = g + nb * 512;
  for (int i = 0; i < nx; ++i) {
    const int8_t* xq = x.qs(m0 + i);
    const float* xd = x.d(m0 + i);
    const int16_t* bs = x.bsums(m0 + i);
    float acc[16] = {};
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* codes = g + b * 512;
      for (int r = 0; r < 16; ++r) {
        int isum = -128 * int(bs[b]);
        for (int q = 0; q < 8; ++q)
          for (int t = 0; t < 4; ++t) isum += int(codes[64 * q + 4 * r + t]) * int(xq[32 * b + 4 * q + t]);
        acc[r] += float(isum) * (f16_at(scales + 32 * b + 2 * r) * xd[b]);
      }
    }
    for (int r = 0; r < 16; ++r) y[i * ldy + r] = acc[r];
  }
}

float dot_f32(const uint8_t* w, const float* x, int64_t K) {
  const float* wf = reinterpret_cast<const float*>(w);
  float acc = 0.f;
  for (int64_t k = 0; k < K; ++k) acc += wf[k] * x[k];
  return acc;
}

float dot_bf16(const uint8_t* w, const float* x, int64_t K) {
  float acc = 0.f;
  for (int64_t k = 0; k < K; ++k) {
    uint16_t h;
    std::memcpy(&h, w + 2 * k, 2);
    acc += bf16_to_f32(h) * x[k];
  }
  return acc;
}

float dot_f16(const uint8_t* w, const float* x, int64_t K) {
  float acc = 0.f;
  for (int64_t k = 0; k < K; ++k) acc += f16_at(w + 2 * k) * x[k];
  return acc;
}

}  // namespace

const KernelSet& portable_kernels() {
  static const KernelSet k{"portable", tile_q4_0_q8_0<true>, tile_q4_0_q8_0<false>, tile_q4_K, tile_q6_K,
                           dot_f32, dot_bf16, dot_f16, group_q8_0x16};
  return k;
}

}  // namespace lmlab::cpu::qk
