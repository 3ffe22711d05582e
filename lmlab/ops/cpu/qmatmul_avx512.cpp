// AVX-512 VNNI quantized dot products (llama.cpp's CPU scheme): weight codes as unsigned bytes
// times activation codes as signed bytes with vpdpbusd (4 products summed per int32 lane), block
// scales applied with vpdpwssd (one lane's sum fits 16 bits, the scale sits in the low 16 bits of a
// lane whose high half is 0, so the pair product is exactly sum * scale), then one float FMA per
// block. Signed weights (Q8_0, Q4_0 as q - 8) use |w| and sign-flip the activations; Q6_K's -32
// offset and Q4_K's min term come from the activation's 16-value sums. A tile runs up to 4
// activation rows against one weight row, so a weight block is unpacked once per 4 rows.
//
// Compiled for AVX-512 F/BW/DQ/VL/VNNI (+ AVX2, FMA, F16C) whatever the build's -march, like
// qmatmul_avx2.cpp (target pragma after the includes); used only where the CPU has them.
#include "lmlab/ops/cpu/qmatmul_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "lmlab/core/quant.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")
#endif

// GCC 12's AVX-512 headers build many intrinsics on a self-initialised "undefined" vector and then
// warn about it wherever they are inlined (GCC PR 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace lmlab::cpu::qk {
namespace {

float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
float hsum(__m512 v) { return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))); }

// Two 32-byte pieces as one 64-byte vector.
__m512i load_2x256(const int8_t* lo, const int8_t* hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)), 1);
}

// ---- Q8_0 / Q4_0 (blocks of 32, one 256-bit vector each) ----
// Q8_0 against one activation row (decoding): two blocks per 512-bit step halve the integer
// instructions per byte, and two accumulators keep the FMA chain from bounding the loop. Decoding
// streams weights from DRAM once; a software prefetch kPrefetchBytes ahead (rows are contiguous, so
// it runs into the next rows) keeps more lines in flight than the hardware prefetcher alone.
// Measured on the 134M-parameter bench model (bench_gguf tg64), tokens/s by distance in bytes:
//   1 thread:  Q8_0 58 (none) / 84 (768) / 92 (1536);  Q4_K 94 (none) / 145 (1536)
//   2 threads: Q8_0 202 (1536) / 233 (3072) / 269 (6144) / 254 (8192) / 236 (12288);
//              Q4_K 346 (1536) / 352 (3072) / 361 (6144) / 369 (8192) / 352 (12288)
constexpr int kPrefetchBytes = 6144;
float dot_q8_0_row(const uint8_t* w, int64_t K, const int8_t* xq, const float* xd) {
  const int64_t nb = K / 32;
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t ib = 0;
  auto step = [&](const uint8_t* wb, int64_t b) {  // blocks b and b + 1
    _mm_prefetch(reinterpret_cast<const char*>(wb) + kPrefetchBytes, _MM_HINT_T0);
    __m512i wv = load_2x256(reinterpret_cast<const int8_t*>(wb + 2), reinterpret_cast<const int8_t*>(wb + kQ8_0Bytes + 2));
    __m512i xv = _mm512_loadu_si512(xq + 32 * b);
    __mmask64 neg = _mm512_movepi8_mask(wv);
    xv = _mm512_mask_sub_epi8(xv, neg, zero, xv);
    __m512i p = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(wv), xv);
    __m512 sc = _mm512_insertf32x8(_mm512_set1_ps(f16_at(wb) * xd[b]),
                                   _mm256_set1_ps(f16_at(wb + kQ8_0Bytes) * xd[b + 1]), 1);
    return _mm512_mul_ps(_mm512_cvtepi32_ps(p), sc);
  };
  for (; ib + 4 <= nb; ib += 4, w += 4 * kQ8_0Bytes) {
    acc0 = _mm512_add_ps(acc0, step(w, ib));
    acc1 = _mm512_add_ps(acc1, step(w + 2 * kQ8_0Bytes, ib + 2));
  }
  for (; ib + 2 <= nb; ib += 2, w += 2 * kQ8_0Bytes) acc0 = _mm512_add_ps(acc0, step(w, ib));
  float tail = 0.f;
  for (; ib < nb; ++ib, w += kQ8_0Bytes) {
    __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2));
    __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 32 * ib));
    xv = _mm256_mask_sub_epi8(xv, _mm256_movepi8_mask(wv), _mm256_setzero_si256(), xv);
    __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(wv), xv);
    tail += hsum(_mm256_cvtepi32_ps(p)) * f16_at(w) * xd[ib];
  }
  return hsum(_mm512_add_ps(acc0, acc1)) + tail;
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
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t ib = 0; ib < K / 32; ++ib, w += bytes) {
    if constexpr (NX == 1) _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes, _MM_HINT_T0);
    __m256i wv;
    if constexpr (kQ4) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
      wv = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
      wv = _mm256_sub_epi8(_mm256_and_si256(wv, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
    } else {
      wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2));
    }
    // |w| as unsigned bytes (|-128| = 128 is still right as u8); x negated where w < 0.
    __m256i aw = _mm256_abs_epi8(wv);
    __mmask32 neg = _mm256_movepi8_mask(wv);
    float dw = f16_at(w);
    for (int i = 0; i < NX; ++i) {
      __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[i] + 32 * ib));
      xv = _mm256_mask_sub_epi8(xv, neg, zero, xv);
      __m256i p = _mm256_dpbusd_epi32(zero, aw, xv);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * xd[i][ib]), acc[i]);
    }
  }
  for (int i = 0; i < NX; ++i) y[i * ldy] = hsum(acc[i]);
}

// ---- Q4_K ----
// unpack_q4_K_scales on 32-bit lanes (scalar stores then a vector load would stall on store
// forwarding once per block): lanes 0-3 = scales 0-3, scales 4-7, mins 0-3, mins 4-7.
__m128i q4_K_scales(const uint8_t* packed) {
  // 16 bytes from the 12 scale bytes on: the last 4 are nibbles of the same block, never used.
  __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
  __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0));  // u0 u2 u1 u2
  __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0));  // u0 u0 u1 u1
  a = _mm_srlv_epi32(a, _mm_set_epi32(4, 0, 0, 0));
  __m128i lo = _mm_and_si128(a, _mm_set_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
  __m128i hi = _mm_and_si128(_mm_srli_epi32(b, 2), _mm_set_epi32(0x30303030, 0, 0x30303030, 0));
  return _mm_or_si128(lo, hi);
}

// A 64-byte load of the nibbles holds low nibbles = [sub-block 2c | 2c+2] and high nibbles =
// [2c+1 | 2c+3] (c = 0 or 2), so each int32 lane of a vpdpbusd result belongs to one sub-block
// and the matching activations are two 32-byte pieces.
template <int NX>
void tile_q4_K(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  const int8_t* xq[NX];
  const float* xd[NX];
  const int16_t* xb[NX];
  __m512 acc[NX];
  __m256 macc[NX];
  for (int i = 0; i < NX; ++i) {
    xq[i] = x.qs(m0 + i);
    xd[i] = x.d(m0 + i);
    xb[i] = x.bsums(m0 + i);
    acc[i] = _mm512_setzero_ps();
    macc[i] = _mm256_setzero_ps();
  }
  const __m512i m4 = _mm512_set1_epi8(0x0F), zero = _mm512_setzero_si512();
  const __m512i idx0 = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i idx1 = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i idx2 = _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4);
  const __m512i idx3 = _mm512_set_epi32(7, 7, 7, 7, 7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5);
  const __m128i mins_dup = _mm_set_epi8(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
  for (int64_t ib = 0; ib < K / kQK_K; ++ib, w += kQ4_KBytes) {
    if constexpr (NX == 1) {  // decoding: see kPrefetchBytes
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + 64, _MM_HINT_T0);
    }
    __m128i smv = q4_K_scales(w + 4);
    __m512i sm32 = _mm512_cvtepu8_epi32(smv);  // lanes 0-7 scales, 8-15 mins; high halves 0
    __m512i s0 = _mm512_permutexvar_epi32(idx0, sm32), s1 = _mm512_permutexvar_epi32(idx1, sm32);
    __m512i s2 = _mm512_permutexvar_epi32(idx2, sm32), s3 = _mm512_permutexvar_epi32(idx3, sm32);
    __m256i mins16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(smv, mins_dup));  // m0 m0 m1 m1 ...
    const __m512i v0 = _mm512_loadu_si512(w + 16), v1 = _mm512_loadu_si512(w + 80);
    const __m512i w0 = _mm512_and_si512(v0, m4), w1 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
    const __m512i w2 = _mm512_and_si512(v1, m4), w3 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
    const float d = f16_at(w), dmin = f16_at(w + 2);
    for (int i = 0; i < NX; ++i) {
      const int8_t* q = xq[i] + kQK_K * ib;
      __m512i isum = _mm512_dpwssd_epi32(zero, _mm512_dpbusd_epi32(zero, w0, load_2x256(q, q + 64)), s0);
      isum = _mm512_dpwssd_epi32(isum, _mm512_dpbusd_epi32(zero, w1, load_2x256(q + 32, q + 96)), s1);
      isum = _mm512_dpwssd_epi32(isum, _mm512_dpbusd_epi32(zero, w2, load_2x256(q + 128, q + 192)), s2);
      isum = _mm512_dpwssd_epi32(isum, _mm512_dpbusd_epi32(zero, w3, load_2x256(q + 160, q + 224)), s3);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * xd[i][ib]), acc[i]);
      __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[i] + 16 * ib));
      macc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins16)), _mm256_set1_ps(dmin * xd[i][ib]),
                                macc[i]);
    }
  }
  for (int i = 0; i < NX; ++i) y[i * ldy] = hsum(acc[i]) - hsum(macc[i]);
}

// ---- Q6_K ----
// A 64-byte load of ql holds values [0, 64) of a 128-value half in its low nibbles and [64, 128) in
// its high ones, in order; the two high bits come from the 32 qh bytes (2 bits per value group),
// moved to bits 4-5 with one 64-bit shift per 256-bit half.
template <int NX>
void tile_q6_K(const uint8_t* w, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  const int8_t* xq[NX];
  const float* xd[NX];
  const int16_t* xb[NX];
  __m512 acc[NX];
  for (int i = 0; i < NX; ++i) {
    xq[i] = x.qs(m0 + i);
    xd[i] = x.d(m0 + i);
    xb[i] = x.bsums(m0 + i);
    acc[i] = _mm512_setzero_ps();
  }
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30), zero = _mm512_setzero_si512();
  const __m512i cnt_lo = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0), cnt_hi = _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4);
  __m512i idx[4];
  for (int k = 0; k < 4; ++k)
    idx[k] = _mm512_add_epi32(_mm512_set1_epi32(4 * k),
                              _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0));
  for (int64_t ib = 0; ib < K / kQK_K; ++ib, w += kQ6_KBytes) {
    if constexpr (NX == 1) {  // decoding: see kPrefetchBytes
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes, _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(w) + kPrefetchBytes + 64, _MM_HINT_T0);
    }
    __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 192)));
    __m512i sc32 = _mm512_cvtepu16_epi32(sc16);  // int16 scale in the low half, 0 in the high half
    __m512i wv[4];
    for (int h = 0; h < 2; ++h) {
      __m512i l = _mm512_loadu_si512(w + 64 * h);
      __m512i hq = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 128 + 32 * h)));
      __m512i hb_lo = _mm512_and_si512(_mm512_slli_epi64(_mm512_srlv_epi64(hq, cnt_lo), 4), m30);
      __m512i hb_hi = _mm512_and_si512(_mm512_slli_epi64(_mm512_srlv_epi64(hq, cnt_hi), 4), m30);
      wv[2 * h] = _mm512_or_si512(_mm512_and_si512(l, m4), hb_lo);
      wv[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), hb_hi);
    }
    __m512i s[4];
    for (int k = 0; k < 4; ++k) s[k] = _mm512_permutexvar_epi32(idx[k], sc32);
    const float d = f16_at(w + 208);
    for (int i = 0; i < NX; ++i) {
      const int8_t* q = xq[i] + kQK_K * ib;
      __m512i isum = zero;
      for (int k = 0; k < 4; ++k)
        isum = _mm512_dpwssd_epi32(isum, _mm512_dpbusd_epi32(zero, wv[k], _mm512_loadu_si512(q + 64 * k)), s[k]);
      __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[i] + 16 * ib));
      __m256i corr = _mm256_madd_epi16(bs, sc16);  // sum_j sc_j * bsum_j, in pairs
      isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(_mm512_zextsi256_si512(corr), 5));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * xd[i][ib]), acc[i]);
    }
  }
  for (int i = 0; i < NX; ++i) y[i * ldy] = hsum(acc[i]);
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
#undef LMLAB_QK_TILE

// Interleaved Q8_0 (QMatrix::interleave == 16): per block, eight 64-byte loads hold 4 codes of each
// of 16 rows; each meets the broadcast activation quad of the same 4 values in one vpdpbusd (codes
// unsigned, offset by 128, the 128 * bsum correction preloaded in the accumulator), so a block
// of 16 rows costs 8 loads and 8 vpdpbusd per activation row, and the 16 per-row scales arrive as
// one f16 vector. Two integer chains per row (even / odd quads) halve the vpdpbusd latency chain.
// Weights are loaded once per block and serve up to 4 activation rows. Rows are contiguous per
// group and groups follow each other, so a thread's range is one stream; the prefetch runs
// kPrefetchBytes ahead of the codes, as in dot_q8_0_row.
template <int NX>
void group_q8_0x16_t(const uint8_t* g, int64_t K, const QRows& x, int64_t m0, float* y, int64_t ldy) {
  const int64_t nb = K / 32;
  const uint8_t* scales = g + nb * 512;
  const int32_t* xq[NX];
  const float* xd[NX];
  const int16_t* bs[NX];
  __m512 acc[NX];
  for (int i = 0; i < NX; ++i) {
    xq[i] = reinterpret_cast<const int32_t*>(x.qs(m0 + i));
    xd[i] = x.d(m0 + i);
    bs[i] = x.bsums(m0 + i);
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* c = g + b * 512;
    for (int l = 0; l < 8; ++l) _mm_prefetch(reinterpret_cast<const char*>(c) + kPrefetchBytes + 64 * l, _MM_HINT_T0);
    __m512i w[8];
    for (int q = 0; q < 8; ++q) w[q] = _mm512_loadu_si512(c + 64 * q);
    const __m512 ws = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(scales + 32 * b)));
    for (int i = 0; i < NX; ++i) {
      const int32_t* xb = xq[i] + 8 * b;
      __m512i s0 = _mm512_set1_epi32(-128 * int32_t(bs[i][b])), s1 = _mm512_setzero_si512();
      for (int q = 0; q < 8; q += 2) {
        s0 = _mm512_dpbusd_epi32(s0, w[q], _mm512_set1_epi32(xb[q]));
        s1 = _mm512_dpbusd_epi32(s1, w[q + 1], _mm512_set1_epi32(xb[q + 1]));
      }
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), _mm512_mul_ps(ws, _mm512_set1_ps(xd[i][b])),
                               acc[i]);
    }
  }
  for (int i = 0; i < NX; ++i) _mm512_storeu_ps(y + i * ldy, acc[i]);
}

void group_q8_0x16(const uint8_t* g, int64_t K, const QRows& x, int64_t m0, int nx, float* y, int64_t ldy) {
  switch (nx) {
    case 1: group_q8_0x16_t<1>(g, K, x, m0, y, ldy); break;
    case 2: group_q8_0x16_t<2>(g, K, x, m0, y, ldy); break;
    case 3: group_q8_0x16_t<3>(g, K, x, m0, y, ldy); break;
    default: group_q8_0x16_t<4>(g, K, x, m0, y, ldy); break;
  }
}

// Dense rows: widen bf16 / f16 to f32 and FMA against the f32 activations (no rounding of x).
__m512 bf16x16(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }

float dot_f32(const uint8_t* w, const float* x, int64_t K) {
  const float* wf = reinterpret_cast<const float*>(w);
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(wf + k), _mm512_loadu_ps(x + k), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(wf + k + 16), _mm512_loadu_ps(x + k + 16), a1);
  }
  for (; k < K; k += 16) {
    __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, wf + k), _mm512_maskz_loadu_ps(m, x + k), a0);
  }
  return hsum(_mm512_add_ps(a0, a1));
}

template <bool kBF16>
__m512 widen(__m256i v) {
  return kBF16 ? bf16x16(v) : _mm512_cvtph_ps(v);
}

template <bool kBF16>
float dot_dense(const uint8_t* w, const float* x, int64_t K) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    a0 = _mm512_fmadd_ps(widen<kBF16>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * k))),
                         _mm512_loadu_ps(x + k), a0);
    a1 = _mm512_fmadd_ps(widen<kBF16>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * k + 32))),
                         _mm512_loadu_ps(x + k + 16), a1);
  }
  for (; k < K; k += 16) {
    __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
    a0 = _mm512_fmadd_ps(widen<kBF16>(_mm256_maskz_loadu_epi16(m, w + 2 * k)), _mm512_maskz_loadu_ps(m, x + k), a0);
  }
  return hsum(_mm512_add_ps(a0, a1));
}

}  // namespace
}  // namespace lmlab::cpu::qk

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace lmlab::cpu::qk {
// Baseline code (after the pragma): nothing AVX-512 runs before the check.
const KernelSet* avx512_kernels() {
  static const KernelSet k{"avx512vnni", run_q4_0, run_q8_0, run_q4_K, run_q6_K, dot_f32, dot_dense<true>, dot_dense<false>,
                           group_q8_0x16};
  __builtin_cpu_init();
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") &&
                         __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return ok ? &k : nullptr;
}
}  // namespace lmlab::cpu::qk

#else

namespace lmlab::cpu::qk {
const KernelSet* avx512_kernels() { return nullptr; }
}  // namespace lmlab::cpu::qk

#endif
