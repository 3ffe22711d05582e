// AVX2 + FMA + F16C quantized dot products (x86-64-v3: most laptops and cloud CPUs without
// AVX-512). No VNNI here, so a byte dot product is vpmaddubsw (unsigned x signed byte pairs summed
// into saturating int16) then vpmaddwd (int16 pairs into int32). Every caller keeps a pair sum
// below 2^15 so nothing saturates: signed weights (Q8_0, Q4_0 as q - 8, interleaved Q8_0) go in
// as |w| with the activations sign-flipped by w (|w| <= 128, |x| <= 127: 2 * 128 * 127 = 32512),
// unsigned ones (Q4_K 0..15, Q6_K 0..63) go in as they are. Block and sub-block scales ride on the
// vpmaddwd (a broadcast int16 scale in place of the usual 1), Q6_K's -32 offset and Q4_K's min term
// come from the activation's 16-value sums, then one float FMA per block. The integer block sums
// are those of the portable kernels. A tile runs up to 4 activation rows against one weight row.
//
// This file is compiled for AVX2 + FMA + F16C whatever the build's -march (target pragma below,
// after the includes, so inline functions of the headers keep the build's baseline: the linker may
// pick their copies from this object for every caller); qmatmul.cpp only calls in here when the
// CPU has the instructions (avx2_kernels()).
#include "lmlab/ops/cpu/qmatmul_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "lmlab/core/dtype.h"
#include "lmlab/core/quant.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace lmlab::cpu::qk {
namespace {

inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// int32 lanes: sum of 4 adjacent products of unsigned a and signed b, each pair times the int16 in
// `scale`'s matching lane (1 for a plain dot product).
inline __m256i dot_u8s8(__m256i a, __m256i b, __m256i scale) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), scale);
}
inline __m256i ones16() { return _mm256_set1_epi16(1); }

// ---- Q8_0 / Q4_0 (blocks of 32, one 256-bit vector each) ----
// Decoding streams every weight once from memory; the prefetch runs this far ahead (rows are
// contiguous, so it runs into the next rows). The distance measured best for the AVX-512 kernels
// (qmatmul_avx512.cpp); not tuned separately for AVX2.
constexpr int kPrefetchBytes = 6144;

// Q8_0 against one activation row (decoding): two blocks per step into two accumulators, so the
// FMA latency chain does not bound the loop.
float dot_q8_0_row(const uint8_t* w, int64_t K, const int8_t* xq, const float* xd) {
  const int64_t nb = K / 32;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t ib = 0;
  for (; ib + 2 <= nb; ib += 2, w += 2 * kQ8_0Bytes) {
    _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes, _MM_HINT_T0);
    const __m256i w0 = load256(w + 2), w1 = load256(w + kQ8_0Bytes + 2);
    const __m256i p0 = dot_u8s8(_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(load256(xq + 32 * ib), w0), ones16());
    const __m256i p1 =
        dot_u8s8(_mm256_sign_epi8(w1, w1), _mm256_sign_epi8(load256(xq + 32 * ib + 32), w1), ones16());
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16_at(w) * xd[ib]), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(f16_at(w + kQ8_0Bytes) * xd[ib + 1]), acc1);
  }
  if (ib < nb) {
    const __m256i w0 = load256(w + 2);
    const __m256i p0 = dot_u8s8(_mm256_sign_epi8(w0, w0), _mm256_sign_epi8(load256(xq + 32 * ib), w0), ones16());
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16_at(w) * xd[ib]), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

template <bool kQ4, int NX>
void tile_q4_0_q8_0(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  if constexpr (!kQ4 && NX == 1) {
    y[0] = dot_q8_0_row(w, K, x.qs(m0), x.d(m0));
    return;
  }
  const size_t bytes = kQ4 ? kQ4_0Bytes : kQ8_0Bytes;
  const int8_t* xq[NX];
  const float* xd[NX];
  __m256 acc[NX];
  for (int i = 0; i < NX; ++i) {
    xq[i] = x.qs(m0 + i);
    xd[i] = x.d(m0 + i);
    acc[i] = _mm256_setzero_ps();
  }
  for (int64_t ib = 0; ib < K / 32; ++ib, w += bytes) {
    if constexpr (NX == 1) _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes, _MM_HINT_T0);
    __m256i wv;
    if constexpr (kQ4) {
      // byte j: value j in the low nibble, value j + 16 in the high one
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
      wv = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
      wv = _mm256_sub_epi8(_mm256_and_si256(wv, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
    } else {
      wv = load256(w + 2);
    }
    const __m256i aw = _mm256_sign_epi8(wv, wv);  // |w|; |-128| = 128 is right as an unsigned byte
    const float dw = f16_at(w);
    for (int i = 0; i < NX; ++i) {
      const __m256i p = dot_u8s8(aw, _mm256_sign_epi8(load256(xq[i] + 32 * ib), wv), ones16());
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[i][ib]), acc[i]);
    }
  }
  for (int i = 0; i < NX; ++i) y[i * ldy] = hsum(acc[i]);
}

// ---- Q4_K ----
// unpack_q4_K_scales on 32-bit lanes: lanes 0-3 = scales 0-3, scales 4-7, mins 0-3, mins 4-7.
inline __m128i q4_K_scales(const uint8_t* packed) {
  // 16 bytes from the 12 scale bytes on: the last 4 are nibbles of the same block, never used.
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
  __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0));        // u0 u2 u1 u2
  const __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0));  // u0 u0 u1 u1
  a = _mm_srlv_epi32(a, _mm_set_epi32(4, 0, 0, 0));
  const __m128i lo = _mm_and_si128(a, _mm_set_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
  const __m128i hi = _mm_and_si128(_mm_srli_epi32(b, 2), _mm_set_epi32(0x30303030, 0, 0x30303030, 0));
  return _mm_or_si128(lo, hi);
}

// 32 bytes of nibbles c (0..3) hold sub-block 2c in the low nibbles and 2c + 1 in the high ones,
// each against 32 contiguous activations; the sub-block's 6-bit scale is broadcast into the
// vpmaddwd (int16 scales 0..7 in both 128-bit halves, one in-lane byte shuffle per sub-block).
// Pair sums <= 2 * 15 * 127, times a scale <= 63, 8 sub-blocks: far from int32 overflow.
template <int NX>
void tile_q4_K(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  const int8_t* xq[NX];
  const float* xd[NX];
  const int16_t* xb[NX];
  __m256 acc[NX], macc[NX];
  for (int i = 0; i < NX; ++i) {
    xq[i] = x.qs(m0 + i);
    xd[i] = x.d(m0 + i);
    xb[i] = x.bsums(m0 + i);
    acc[i] = _mm256_setzero_ps();
    macc[i] = _mm256_setzero_ps();
  }
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m128i mins_dup = _mm_set_epi8(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
  for (int64_t ib = 0; ib < K / kQK_K; ++ib, w += kQ4_KBytes) {
    if constexpr (NX == 1) {  // decoding: see kPrefetchBytes
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + 64, _MM_HINT_T0);
    }
    const __m128i smv = q4_K_scales(w + 4);
    const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(smv));  // scales 0-7, twice
    const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(smv, mins_dup));  // m0 m0 m1 m1 ...
    __m256i isum[NX];
    for (int i = 0; i < NX; ++i) isum[i] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i v = load256(w + 16 + 32 * c);
      const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      // int16 lane s of sc16 everywhere: bytes 2s, 2s + 1
      const __m256i s_lo = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * c))));
      const __m256i s_hi = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(short(0x0100 + 0x0202 * (2 * c + 1))));
      for (int i = 0; i < NX; ++i) {
        const int8_t* q = xq[i] + kQK_K * ib + 64 * c;
        isum[i] = _mm256_add_epi32(isum[i], dot_u8s8(lo, load256(q), s_lo));
        isum[i] = _mm256_add_epi32(isum[i], dot_u8s8(hi, load256(q + 32), s_hi));
      }
    }
    const float d = f16_at(w), dmin = f16_at(w + 2);
    for (int i = 0; i < NX; ++i) {
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(d * xd[i][ib]), acc[i]);
      const __m256i bs = load256(xb[i] + 16 * ib);
      macc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16)), _mm256_set1_ps(dmin * xd[i][ib]),
                                macc[i]);
    }
  }
  for (int i = 0; i < NX; ++i) y[i * ldy] = hsum(acc[i]) - hsum(macc[i]);
}

// ---- Q6_K ----
// Per 128-value half h: ql bytes [0, 32) hold values 0-31 (low nibbles) and 64-95 (high), bytes
// [32, 64) values 32-63 and 96-127; qh byte l carries the top 2 bits of values l, l + 32, l + 64,
// l + 96 in bit pairs 0-1, 2-3, 4-5, 6-7, moved to bits 4-5 by a 16-bit shift and a byte mask.
// Each 32-value group g meets two 16-value scales: int16 lanes 0-7 of its vpmaddubsw result are
// values 0-15, lanes 8-15 values 16-31, so the vpmaddwd multiplier is [sc[2j] x 8 | sc[2j+1] x 8].
template <int NX>
void tile_q6_K(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  const int8_t* xq[NX];
  const float* xd[NX];
  const int16_t* xb[NX];
  __m256 acc[NX];
  for (int i = 0; i < NX; ++i) {
    xq[i] = x.qs(m0 + i);
    xd[i] = x.d(m0 + i);
    xb[i] = x.bsums(m0 + i);
    acc[i] = _mm256_setzero_ps();
  }
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  for (int64_t ib = 0; ib < K / kQK_K; ++ib, w += kQ6_KBytes) {
    if constexpr (NX == 1) {  // decoding: see kPrefetchBytes
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + 64, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + 128, _MM_HINT_T0);
    }
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 192));
    __m256i isum[NX];
    for (int i = 0; i < NX; ++i) isum[i] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = load256(w + 64 * h), l1 = load256(w + 64 * h + 32), hb = load256(w + 128 + 32 * h);
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
      q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hb, m30));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                             _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
      for (int g = 0; g < 4; ++g) {
        const int j = 4 * h + g;  // 32-value group of the block
        const __m256i sv = _mm256_cvtepi8_epi16(
            _mm_shuffle_epi8(sc8, _mm_set_epi64x(0x0101010101010101LL * (2 * j + 1), 0x0101010101010101LL * (2 * j))));
        for (int i = 0; i < NX; ++i)
          isum[i] = _mm256_add_epi32(isum[i], dot_u8s8(q[g], load256(xq[i] + kQK_K * ib + 32 * j), sv));
      }
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    const float d = f16_at(w + 208);
    for (int i = 0; i < NX; ++i) {
      // codes stand for q - 32: subtract 32 * sum_s sc_s * bsum_s
      const __m256i corr = _mm256_madd_epi16(load256(xb[i] + 16 * ib), sc16);
      const __m256i s = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(corr, 5));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * xd[i][ib]), acc[i]);
    }
  }
  for (int i = 0; i < NX; ++i) y[i * ldy] = hsum(acc[i]);
}

// ---- interleaved Q8_0 (QMatrix::interleave == 16) ----
// Per block, eight 64-byte quads hold 4 codes of each of 16 rows (rows 0-7 in the low 32 bytes,
// 8-15 in the high ones), stored as q + 128: XOR 0x80 gives the signed codes back (vpmaddubsw
// would saturate on 255 * 127 pairs), which meet the broadcast activation quad of the same 4 values
// by the |w| / sign-flip rule. Each int32 lane is then one row's 4-value sum, so a block of 16 rows
// costs 16 loads and no horizontal sums, and its 16 scales arrive as two f16 vectors. The weights
// serve up to 4 activation rows per pass; the prefetch runs kPrefetchBytes ahead of the codes.
template <int NX>
void group_q8_0x16_t(const uint8_t* g, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  const int64_t nb = K / 32;
  const uint8_t* scales = g + nb * 512;
  const int32_t* xq[NX];
  const float* xd[NX];
  __m256 acc[NX][2];
  for (int i = 0; i < NX; ++i) {
    xq[i] = reinterpret_cast<const int32_t*>(x.qs(m0 + i));
    xd[i] = x.d(m0 + i);
    acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  }
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* c = g + b * 512;
    for (int l = 0; l < 8; ++l) _mm_prefetch(reinterpret_cast<const char*>(c) + kPrefetchBytes + 64 * l, _MM_HINT_T0);
    __m256i s[NX][2];
    for (int i = 0; i < NX; ++i) s[i][0] = s[i][1] = _mm256_setzero_si256();
    for (int q = 0; q < 8; ++q) {
      for (int hf = 0; hf < 2; ++hf) {
        const __m256i wv = _mm256_xor_si256(load256(c + 64 * q + 32 * hf), flip);
        const __m256i aw = _mm256_sign_epi8(wv, wv);
        for (int i = 0; i < NX; ++i) {
          const __m256i xv = _mm256_set1_epi32(xq[i][8 * b + q]);
          s[i][hf] = _mm256_add_epi32(s[i][hf], dot_u8s8(aw, _mm256_sign_epi8(xv, wv), ones16()));
        }
      }
    }
    const __m256 ws0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 32 * b)));
    const __m256 ws1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + 32 * b + 16)));
    for (int i = 0; i < NX; ++i) {
      const __m256 xs = _mm256_set1_ps(xd[i][b]);
      acc[i][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[i][0]), _mm256_mul_ps(ws0, xs), acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[i][1]), _mm256_mul_ps(ws1, xs), acc[i][1]);
    }
  }
  for (int i = 0; i < NX; ++i) {
    _mm256_storeu_ps(y + i * ldy, acc[i][0]);
    _mm256_storeu_ps(y + i * ldy + 8, acc[i][1]);
  }
}

// ---- dense rows: widen bf16 / f16 to f32 and FMA against the f32 activations ----
inline __m256 widen_bf16(__m128i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16)); }

float dot_f32(const uint8_t* w, const float* x, int64_t K) {
  const float* wf = reinterpret_cast<const float*>(w);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + k), _mm256_loadu_ps(x + k), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + k + 8), _mm256_loadu_ps(x + k + 8), a1);
  }
  float tail = 0.f;
  for (; k < K; ++k) tail += wf[k] * x[k];
  return hsum(_mm256_add_ps(a0, a1)) + tail;
}

template <bool kBF16>
float dot_dense(const uint8_t* w, const float* x, int64_t K) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * k));
    const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * k + 16));
    a0 = _mm256_fmadd_ps(kBF16 ? widen_bf16(v0) : _mm256_cvtph_ps(v0), _mm256_loadu_ps(x + k), a0);
    a1 = _mm256_fmadd_ps(kBF16 ? widen_bf16(v1) : _mm256_cvtph_ps(v1), _mm256_loadu_ps(x + k + 8), a1);
  }
  float tail = 0.f;
  for (; k < K; ++k) {
    uint16_t h;
    std::memcpy(&h, w + 2 * k, 2);
    tail += (kBF16 ? bf16_to_f32(h) : _cvtsh_ss(h)) * x[k];
  }
  return hsum(_mm256_add_ps(a0, a1)) + tail;
}

// nx (1..4) to the template instantiation.
#define LMLAB_QK_TILE(name, ...)                                                                         \
  void name(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy) {    \
    switch (nx) {                                                                                        \
      case 1: __VA_ARGS__<1>(w, K, x, m0, y, ldy); break;                                                \
      case 2: __VA_ARGS__<2>(w, K, x, m0, y, ldy); break;                                                \
      case 3: __VA_ARGS__<3>(w, K, x, m0, y, ldy); break;                                                \
      default: __VA_ARGS__<4>(w, K, x, m0, y, ldy); break;                                               \
    }                                                                                                    \
  }
template <int NX>
void tile_q4_0_t(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  tile_q4_0_q8_0<true, NX>(w, K, x, m0, y, ldy);
}
template <int NX>
void tile_q8_0_t(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  tile_q4_0_q8_0<false, NX>(w, K, x, m0, y, ldy);
}
LMLAB_QK_TILE(run_q4_0, tile_q4_0_t)
LMLAB_QK_TILE(run_q8_0, tile_q8_0_t)
LMLAB_QK_TILE(run_q4_K, tile_q4_K)
LMLAB_QK_TILE(run_q6_K, tile_q6_K)
LMLAB_QK_TILE(run_group_q8_0x16, group_q8_0x16_t)
#undef LMLAB_QK_TILE

}  // namespace
}  // namespace lmlab::cpu::qk

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace lmlab::cpu::qk {
// Baseline code (after the pragma): nothing AVX2 runs before the check.
const KernelSet* avx2_kernels() {
  static const KernelSet k{"avx2", run_q4_0, run_q8_0, run_q4_K, run_q6_K, dot_f32, dot_dense<true>, dot_dense<false>,
                           run_group_q8_0x16};
  __builtin_cpu_init();
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                         __builtin_cpu_supports("f16c");
  return ok ? &k : nullptr;
}
}  // namespace lmlab::cpu::qk

#else

namespace lmlab::cpu::qk {
const KernelSet* avx2_kernels() { return nullptr; }
}  // namespace lmlab::cpu::qk

#endif
