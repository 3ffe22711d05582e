// Attention for a few query rows over a long, strided key/value cache: the decoding kernel (the
// "per-step" member of the family, STYLE 2.3). Keys and values are read in place from the cache
// views [B, Hkv, S, D] with any batch/head stride (rows must be contiguous), so decoding never
// copies the cache. One (batch, query head) pair per task; scores for all S keys are kept in a
// small per-task buffer (S floats), which is the O(S) a single query needs anyway.
#include <algorithm>
#include <cmath>
#include <vector>

#include "lmlab/ops/cpu/attention_kernels.h"
#include "lmlab/ops/cpu/softmax_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab::cpu {

namespace {
// Dot product with 16 independent partial sums: without -ffast-math the compiler may not reorder a
// single running sum, so one accumulator per lane is what lets the loop vectorise.
inline float dot16(const float* a, const float* b, int64_t n) {
  float acc[16] = {0};
  int64_t d = 0;
  for (; d + 16 <= n; d += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[d + l] * b[d + l];
  float s = 0;
  for (int l = 0; l < 16; ++l) s += acc[l];
  for (; d < n; ++d) s += a[d] * b[d];
  return s;
}
}  // namespace

bool attention_decode_supported(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p) {
  // rows contiguous; the row stride only matters when there is more than one row
  auto rows_ok = [](const Tensor& t) { return t.stride(3) == 1 && (t.size(2) == 1 || t.stride(2) == t.size(3)); };
  return q.dtype() == DType::F32 && p.T <= 8 && rows_ok(q) && rows_ok(k) && rows_ok(v);
}

Tensor attention_decode_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p) {
  Tensor out = Tensor::empty({p.B, p.Hq, p.T, p.Dv}, DType::F32);
  const float* Q = static_cast<const float*>(q.raw_data());
  const float* K = static_cast<const float*>(k.raw_data());
  const float* Vp = static_cast<const float*>(v.raw_data());
  const float* M = p.mask.defined() ? static_cast<const float*>(p.mask.raw_data()) : nullptr;
  float* O = out.data<float>();
  const int64_t qsb = q.stride(0), qsh = q.stride(1), ksb = k.stride(0), ksh = k.stride(1);
  const int64_t vsb = v.stride(0), vsh = v.stride(1);
  const int64_t D = p.D, Dv = p.Dv, S = p.S, T = p.T;
  const float scale = float(p.scale);
  // Split over (batch, head) once the whole call has ~32K multiply-adds (a 12-head layer from ~21
  // cached positions on): the other threads are already spinning between ops when decoding, so
  // handing them half the heads costs ~1 us, while leaving them idle costs the whole attention
  // time of the layer (measured on the 100M bench model, tg128: see docs/BENCHMARKS.md).
  int64_t grain = p.B * p.Hq * S * (D + Dv) * T >= 32768 ? 1 : p.B * p.Hq;
  parallel_for(0, p.B * p.Hq, grain, [&](int64_t lo, int64_t hi) {
    std::vector<float> sc(static_cast<size_t>(S));
    for (int64_t bh = lo; bh < hi; ++bh) {
      int64_t b = bh / p.Hq, h = bh % p.Hq, kvh = h / p.group();
      const float* kb = K + b * ksb + kvh * ksh;
      const float* vb = Vp + b * vsb + kvh * vsh;
      for (int64_t i = 0; i < T; ++i) {
        const float* qi = Q + b * qsb + h * qsh + i * D;
        float* oi = O + ((b * p.Hq + h) * T + i) * Dv;
        // visible key range [j0, j1)
        int64_t j1 = p.causal ? std::min<int64_t>(S, i + p.diag() + 1) : S;
        int64_t j0 = p.window > 0 ? std::max<int64_t>(0, i + p.diag() - p.window + 1) : 0;
        float mx = -INFINITY;
        for (int64_t j = j0; j < j1; ++j) {
          float s = dot16(qi, kb + j * D, D) * scale;
          if (M) s += M[b * p.mask_strides[0] + h * p.mask_strides[1] + i * p.mask_strides[2] + j * p.mask_strides[3]];
          sc[size_t(j)] = s;
          mx = std::max(mx, s);
        }
        std::fill(oi, oi + Dv, 0.0f);
        if (j1 <= j0 || mx == -INFINITY) continue;  // nothing visible: zero output, as the fused kernel
        float z = 0;
        for (int64_t j = j0; j < j1; ++j) z += (sc[size_t(j)] = exp_fast(sc[size_t(j)] - mx));
        float inv = 1.0f / z;
        for (int64_t j = j0; j < j1; ++j) {
          float w = sc[size_t(j)] * inv;
          const float* vj = vb + j * Dv;
          for (int64_t e = 0; e < Dv; ++e) oi[e] += w * vj[e];
        }
      }
    }
  });
  return out;
}

}  // namespace lmlab::cpu
