// Block quantization kernels for ggml's Q4_0, Q8_0, Q4_K and Q6_K formats (layouts of
// llama.cpp ggml-common.h block_q4_0/q8_0/q4_K/q6_K; dequantization as in ggml-quants.c).
#include "lmlab/core/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "lmlab/core/dtype.h"
#include "lmlab/core/error.h"

namespace lmlab {

bool ggml_type_known(uint32_t t) {
  switch (GgmlType(t)) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::Q4_0:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K:
    case GgmlType::BF16: return true;
  }
  return false;
}

int64_t ggml_block_size(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return kQK4_0;
    case GgmlType::Q8_0: return kQK8_0;
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: return kQK_K;
    default: return 1;
  }
}

size_t ggml_type_size(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 4;
    case GgmlType::F16:
    case GgmlType::BF16: return 2;
    case GgmlType::Q4_0: return kQ4_0Bytes;
    case GgmlType::Q8_0: return kQ8_0Bytes;
    case GgmlType::Q4_K: return kQ4_KBytes;
    case GgmlType::Q6_K: return kQ6_KBytes;
  }
  return 0;
}

const char* ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return "f32";
    case GgmlType::F16: return "f16";
    case GgmlType::Q4_0: return "q4_0";
    case GgmlType::Q8_0: return "q8_0";
    case GgmlType::Q4_K: return "q4_K";
    case GgmlType::Q6_K: return "q6_K";
    case GgmlType::BF16: return "bf16";
  }
  return "unknown";
}

const char* ggml_type_name(uint32_t t) { return ggml_type_known(t) ? ggml_type_name(GgmlType(t)) : "unknown"; }

size_t ggml_row_size(GgmlType t, int64_t n) {
  int64_t bs = ggml_block_size(t);
  LMLAB_CHECK(n >= 0 && n % bs == 0, ValueError, "[quant] ", n, " values is not a multiple of the ",
              ggml_type_name(t), " block size ", bs);
  return size_t(n / bs) * ggml_type_size(t);
}

namespace {

float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}
void store_f16(uint8_t* p, float f) {
  uint16_t h = f32_to_f16(f);
  std::memcpy(p, &h, 2);
}

// Q4_K 6-bit scale/min j (0..7) from the 12 packed bytes (ggml-quants.c get_scale_min_k4).
void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

int nearest(float v) { return int(std::lround(v)); }

}  // namespace

// block_q4_0: f16 d, 16 bytes; byte j holds element j (low nibble) and j+16 (high); x = (q-8)*d.
void dequantize_row_q4_0(const void* blocks, float* out, int64_t n) {
  LMLAB_ASSERT(n % kQK4_0 == 0);
  const uint8_t* b = static_cast<const uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK4_0; ++i, b += kQ4_0Bytes, out += kQK4_0) {
    float d = load_f16(b);
    const uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
      out[j] = float(int(qs[j] & 0xF) - 8) * d;
      out[j + 16] = float(int(qs[j] >> 4) - 8) * d;
    }
  }
}

void quantize_row_q4_0(const float* x, void* blocks, int64_t n) {
  LMLAB_ASSERT(n % kQK4_0 == 0);
  uint8_t* b = static_cast<uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK4_0; ++i, b += kQ4_0Bytes, x += kQK4_0) {
    float amax = 0.f, max = 0.f;  // max: the value of largest magnitude, with its sign
    for (int j = 0; j < kQK4_0; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    float d = max / -8.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    store_f16(b, d);
    for (int j = 0; j < 16; ++j) {
      int q0 = std::min(15, int(int8_t(x[j] * id + 8.5f)));
      int q1 = std::min(15, int(int8_t(x[j + 16] * id + 8.5f)));
      b[2 + j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

// block_q8_0: f16 d, 32 int8; x = q*d.
void dequantize_row_q8_0(const void* blocks, float* out, int64_t n) {
  LMLAB_ASSERT(n % kQK8_0 == 0);
  const uint8_t* b = static_cast<const uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK8_0; ++i, b += kQ8_0Bytes, out += kQK8_0) {
    float d = load_f16(b);
    for (int j = 0; j < kQK8_0; ++j) out[j] = float(int8_t(b[2 + j])) * d;
  }
}

void quantize_row_q8_0(const float* x, void* blocks, int64_t n) {
  LMLAB_ASSERT(n % kQK8_0 == 0);
  uint8_t* b = static_cast<uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK8_0; ++i, b += kQ8_0Bytes, x += kQK8_0) {
    float amax = 0.f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    float d = amax / 127.f;
    float id = d != 0.f ? 1.f / d : 0.f;
    store_f16(b, d);
    for (int j = 0; j < kQK8_0; ++j) b[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
  }
}

// block_q4_K: f16 d, f16 dmin, 12 bytes of packed 6-bit scales and mins for 8 sub-blocks of 32,
// 128 bytes of nibbles. Each 64 values use 32 bytes: low nibbles are sub-block 2k, high 2k+1;
// x = d*sc*q - dmin*m.
// Sub-block fits for the K-quants. Plain min/max scaling wastes levels on one outlier; instead a
// few candidate scales around it are tried, each followed by the least-squares refit of (scale, min)
// for the chosen levels, and the smallest squared error wins (the idea of ggml's make_qkx2_quants
// and make_qx_quants, written independently and unweighted).

namespace {

// 32 values -> x ~= scale * q - min, q in 0..15, scale >= 0, min >= 0.
void fit_affine_4bit(const float* x, float& scale, float& min) {
  float lo = 0.f, hi = 0.f;  // lo <= 0: min is stored unsigned
  for (int l = 0; l < 32; ++l) {
    lo = std::min(lo, x[l]);
    hi = std::max(hi, x[l]);
  }
  scale = (hi - lo) / 15.f;
  min = -lo;
  if (hi <= lo) return;
  auto err_of = [&](float a, float m) {
    float e = 0.f;
    for (int l = 0; l < 32; ++l) {
      int q = a > 0.f ? std::clamp(nearest((x[l] + m) / a), 0, 15) : 0;
      float r = a * float(q) - m - x[l];
      e += r * r;
    }
    return e;
  };
  float best = err_of(scale, min);
  for (int t = -10; t <= 10; ++t) {
    const float iscale = (15.f + 0.1f * float(t)) / (hi - lo);
    float sl = 0, sx = 0, sll = 0, slx = 0;
    for (int l = 0; l < 32; ++l) {
      const float q = float(std::clamp(nearest((x[l] - lo) * iscale), 0, 15));
      sl += q;
      sx += x[l];
      sll += q * q;
      slx += q * x[l];
    }
    const float den = 32.f * sll - sl * sl;
    if (den <= 0.f) continue;
    float a = (32.f * slx - sl * sx) / den, b = (sx - a * sl) / 32.f;  // x ~= a q + b
    if (b > 0.f) {  // min must be >= 0: refit the scale alone with b = 0
      b = 0.f;
      a = sll > 0.f ? slx / sll : 0.f;
    }
    if (a <= 0.f) continue;
    const float e = err_of(a, -b);
    if (e < best) {
      best = e;
      scale = a;
      min = -b;
    }
  }
}

// 16 values -> x ~= scale * q, q in -32..31; returns the (signed) scale.
float fit_symmetric_6bit(const float* x) {
  float amax = 0.f, mx = 0.f;
  for (int l = 0; l < 16; ++l)
    if (std::fabs(x[l]) > amax) {
      amax = std::fabs(x[l]);
      mx = x[l];
    }
  if (amax == 0.f) return 0.f;
  float best_scale = mx / -32.f, best = 0.f;
  for (int l = 0; l < 16; ++l) {
    float r = best_scale * float(std::clamp(nearest(x[l] / best_scale), -32, 31)) - x[l];
    best += r * r;
  }
  for (int t = -9; t <= 9; ++t) {
    const float iscale = -(32.f + 0.1f * float(t)) / mx;
    float sll = 0, slx = 0;
    for (int l = 0; l < 16; ++l) {
      const float q = float(std::clamp(nearest(x[l] * iscale), -32, 31));
      sll += q * q;
      slx += q * x[l];
    }
    if (sll <= 0.f) continue;
    const float sc = slx / sll;
    float e = 0.f;
    for (int l = 0; l < 16; ++l) {
      float r = sc * float(std::clamp(nearest(x[l] / sc), -32, 31)) - x[l];
      e += r * r;
    }
    if (e < best) {
      best = e;
      best_scale = sc;
    }
  }
  return best_scale;
}

}  // namespace

void dequantize_row_q4_K(const void* blocks, float* out, int64_t n) {
  LMLAB_ASSERT(n % kQK_K == 0);
  const uint8_t* b = static_cast<const uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK_K; ++i, b += kQ4_KBytes) {
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t* scales = b + 4;
    const uint8_t* q = b + 16;
    for (int j = 0; j < kQK_K; j += 64, q += 32) {
      int s0, m0, s1, m1;
      scale_min_k4(j / 32, scales, s0, m0);
      scale_min_k4(j / 32 + 1, scales, s1, m1);
      float d1 = d * float(s0), mm1 = dmin * float(m0), d2 = d * float(s1), mm2 = dmin * float(m1);
      for (int l = 0; l < 32; ++l) *out++ = d1 * float(q[l] & 0xF) - mm1;
      for (int l = 0; l < 32; ++l) *out++ = d2 * float(q[l] >> 4) - mm2;
    }
  }
}

void quantize_row_q4_K(const float* x, void* blocks, int64_t n) {
  LMLAB_ASSERT(n % kQK_K == 0);
  uint8_t* b = static_cast<uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK_K; ++i, b += kQ4_KBytes, x += kQK_K) {
    float sub_scale[8], sub_min[8];  // x ~= sub_scale*q - sub_min with q in 0..15, sub_min >= 0
    float max_scale = 0.f, max_min = 0.f;
    for (int s = 0; s < 8; ++s) {
      fit_affine_4bit(x + 32 * s, sub_scale[s], sub_min[s]);
      max_scale = std::max(max_scale, sub_scale[s]);
      max_min = std::max(max_min, sub_min[s]);
    }
    float d = f16_to_f32(f32_to_f16(max_scale / 63.f));
    float dmin = f16_to_f32(f32_to_f16(max_min / 63.f));
    store_f16(b, d);
    store_f16(b + 2, dmin);
    int ls[8], lm[8];
    for (int s = 0; s < 8; ++s) {
      ls[s] = d > 0.f ? std::clamp(nearest(sub_scale[s] / d), 0, 63) : 0;
      lm[s] = dmin > 0.f ? std::clamp(nearest(sub_min[s] / dmin), 0, 63) : 0;
    }
    uint8_t* scales = b + 4;
    std::memset(scales, 0, 12);
    for (int j = 0; j < 8; ++j) {
      if (j < 4) {
        scales[j] = uint8_t(ls[j]);
        scales[j + 4] = uint8_t(lm[j]);
      } else {
        scales[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
        scales[j - 4] |= uint8_t((ls[j] >> 4) << 6);
        scales[j] |= uint8_t((lm[j] >> 4) << 6);
      }
    }
    uint8_t L[kQK_K];
    for (int s = 0; s < 8; ++s) {
      float dd = d * float(ls[s]), mm = dmin * float(lm[s]);
      for (int l = 0; l < 32; ++l)
        L[32 * s + l] = uint8_t(dd > 0.f ? std::clamp(nearest((x[32 * s + l] + mm) / dd), 0, 15) : 0);
    }
    uint8_t* q = b + 16;
    for (int j = 0; j < kQK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
  }
}

// block_q6_K: 128 bytes low nibbles (ql), 64 bytes high 2-bit pairs (qh), 16 int8 scales (one per
// 16 values), f16 d; x = d*scale*(q-32) with q 6-bit. Per 128 values: ql[l] holds elements l (low)
// and l+64 (high), ql[l+32] elements l+32 and l+96; qh[l] bits 0-1,2-3,4-5,6-7 for l, l+32, l+64, l+96.
void dequantize_row_q6_K(const void* blocks, float* out, int64_t n) {
  LMLAB_ASSERT(n % kQK_K == 0);
  const uint8_t* b = static_cast<const uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK_K; ++i, b += kQ6_KBytes, out += kQK_K) {
    const uint8_t* ql = b;
    const uint8_t* qh = b + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
    float d = load_f16(b + 208);
    for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8) {
      float* y = out + 128 * h;
      for (int l = 0; l < 32; ++l) {
        int is = l / 16;
        int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[is + 0]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

void quantize_row_q6_K(const float* x, void* blocks, int64_t n) {
  LMLAB_ASSERT(n % kQK_K == 0);
  uint8_t* b = static_cast<uint8_t*>(blocks);
  for (int64_t i = 0; i < n / kQK_K; ++i, b += kQ6_KBytes, x += kQK_K) {
    float sub_scale[16];  // signed: the largest-magnitude value maps near q = -32
    float max_abs_scale = 0.f, max_scale = 0.f;
    for (int s = 0; s < 16; ++s) {
      sub_scale[s] = fit_symmetric_6bit(x + 16 * s);
      if (std::fabs(sub_scale[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(sub_scale[s]);
        max_scale = sub_scale[s];
      }
    }
    float d = f16_to_f32(f32_to_f16(max_scale / -128.f));
    store_f16(b + 208, d);
    int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
    uint8_t L[kQK_K];
    for (int s = 0; s < 16; ++s) {
      int ls = d != 0.f ? std::clamp(nearest(sub_scale[s] / d), -128, 127) : 0;
      sc[s] = int8_t(ls);
      float dd = d * float(ls);
      for (int l = 0; l < 16; ++l)
        L[16 * s + l] = uint8_t(dd != 0.f ? std::clamp(nearest(x[16 * s + l] / dd), -32, 31) + 32 : 32);
    }
    uint8_t* ql = b;
    uint8_t* qh = b + 128;
    for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32)
      for (int l = 0; l < 32; ++l) {
        int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
        ql[l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
  }
}

void ggml_dequantize(GgmlType t, const void* src, float* out, int64_t n) {
  ggml_row_size(t, n);  // validates n
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (t) {
    case GgmlType::F32: std::memcpy(out, src, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = load_f16(p + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::Q4_0: dequantize_row_q4_0(src, out, n); return;
    case GgmlType::Q8_0: dequantize_row_q8_0(src, out, n); return;
    case GgmlType::Q4_K: dequantize_row_q4_K(src, out, n); return;
    case GgmlType::Q6_K: dequantize_row_q6_K(src, out, n); return;
  }
  throw ValueError(str_cat("[quant] cannot dequantize type ", uint32_t(t)));
}

void ggml_quantize(GgmlType t, const float* x, void* dst, int64_t n) {
  ggml_row_size(t, n);
  uint8_t* p = static_cast<uint8_t*>(dst);
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, x, size_t(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) store_f16(p + 2 * i, x[i]);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(p + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q4_0: quantize_row_q4_0(x, dst, n); return;
    case GgmlType::Q8_0: quantize_row_q8_0(x, dst, n); return;
    case GgmlType::Q4_K: quantize_row_q4_K(x, dst, n); return;
    case GgmlType::Q6_K: quantize_row_q6_K(x, dst, n); return;
  }
  throw ValueError(str_cat("[quant] cannot quantize to type ", uint32_t(t)));
}

}  // namespace lmlab
