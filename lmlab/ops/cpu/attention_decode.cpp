// Attention for a few query rows over a long, strided key/value cache: the decoding kernels (the
// "per-step" member of the family, STYLE 2.3). Keys and values are read in place from the cache
// views [B, Hkv, S, D] with any batch/head/row stride (each row contiguous), so decoding never
// copies the cache. Two kernels:
// - one kv head per query head (group 1): one (batch, head) pair per task; scores for all S keys are
//   kept in a small per-task buffer (S floats), which is the O(S) a single query needs anyway;
// - query heads sharing a kv head (GQA, MQA, MLA's absorbed decode over its latent): every query row
//   of the group (G heads x T queries) is handled together, so each cached key/value row is read once
//   per step instead of once per query head. Key tiles go through small GEMMs with an online softmax
//   (FlashAttention's forward, a tile of G*T query rows), and the keys are split over the threads
//   (split-K, "flash decoding") when there are fewer kv heads than threads; the partial results are
//   merged by their row maxima and sums.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/attention_kernels.h"
#include "lmlab/ops/cpu/softmax_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/matmul.h"

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

// Multiply-adds of the whole call from which it is split over the threads: the other threads are
// already spinning between ops when decoding, so handing them half the work costs ~1 us, while
// leaving them idle costs the whole attention time of the layer (a 12-head layer from ~21 cached
// positions on; measured on the 100M bench model, tg128: see docs/BENCHMARKS.md).
constexpr int64_t kSplitWork = 32768;

int64_t work_of(const AttentionParams& p) { return p.B * p.Hq * p.S * (p.D + p.Dv) * p.T; }

// ---- group 1: one (batch, head) pair per task ----
void decode_per_head(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p, Tensor& out) {
  const float* Q = static_cast<const float*>(q.raw_data());
  const float* K = static_cast<const float*>(k.raw_data());
  const float* Vp = static_cast<const float*>(v.raw_data());
  const float* M = p.mask.defined() ? static_cast<const float*>(p.mask.raw_data()) : nullptr;
  float* O = out.data<float>();
  const int64_t qsb = q.stride(0), qsh = q.stride(1), qsr = q.stride(2);
  const int64_t ksb = k.stride(0), ksh = k.stride(1), ksr = k.stride(2);
  const int64_t vsb = v.stride(0), vsh = v.stride(1), vsr = v.stride(2);
  const int64_t D = p.D, Dv = p.Dv, S = p.S, T = p.T;
  const float scale = float(p.scale);
  int64_t grain = work_of(p) >= kSplitWork ? 1 : p.B * p.Hq;
  parallel_for(0, p.B * p.Hq, grain, [&](int64_t lo, int64_t hi) {
    std::vector<float> sc(static_cast<size_t>(S));
    for (int64_t bh = lo; bh < hi; ++bh) {
      int64_t b = bh / p.Hq, h = bh % p.Hq, kvh = h / p.group();
      const float* kb = K + b * ksb + kvh * ksh;
      const float* vb = Vp + b * vsb + kvh * vsh;
      for (int64_t i = 0; i < T; ++i) {
        const float* qi = Q + b * qsb + h * qsh + i * qsr;
        float* oi = O + ((b * p.Hq + h) * T + i) * Dv;
        // visible key range [j0, j1)
        int64_t j1 = p.causal ? std::min<int64_t>(S, i + p.diag() + 1) : S;
        int64_t j0 = p.window > 0 ? std::max<int64_t>(0, i + p.diag() - p.window + 1) : 0;
        float mx = -INFINITY;
        for (int64_t j = j0; j < j1; ++j) {
          float s = dot16(qi, kb + j * ksr, D) * scale;
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
          const float* vj = vb + j * vsr;
          for (int64_t e = 0; e < Dv; ++e) oi[e] += w * vj[e];
        }
      }
    }
  });
}

// ---- group > 1: one task = (batch, kv head, key split); rows r = g * T + i (head kvh * G + g, query i) ----
void decode_grouped(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                    const AttentionBlocks& bl, Tensor& out) {
  const float* Q = static_cast<const float*>(q.raw_data());
  const float* K = static_cast<const float*>(k.raw_data());
  const float* Vp = static_cast<const float*>(v.raw_data());
  const float* Mk = p.mask.defined() ? static_cast<const float*>(p.mask.raw_data()) : nullptr;
  float* O = out.data<float>();
  const int64_t qsb = q.stride(0), qsh = q.stride(1), qsr = q.stride(2);
  // (a single cached row may carry any row stride; the GEMMs want a leading dimension >= the row)
  const int64_t ksb = k.stride(0), ksh = k.stride(1), ksr = p.S <= 1 ? p.D : k.stride(2);
  const int64_t vsb = v.stride(0), vsh = v.stride(1), vsr = p.S <= 1 ? p.Dv : v.stride(2);
  const int64_t B = p.B, Hq = p.Hq, Hkv = p.Hkv, G = p.group(), T = p.T, R = G * T, D = p.D, Dv = p.Dv;
  const float scale = float(p.scale);
  const float ninf = -std::numeric_limits<float>::infinity(), pinf = std::numeric_limits<float>::infinity();
  // Keys any row can see: the last query (i = T - 1) sees up to S - 1 under the causal rule; the
  // window starts earliest for the first query.
  const int64_t jlo = p.window > 0 ? std::clamp<int64_t>(p.diag() - p.window + 1, 0, p.S) : 0, jhi = p.S;
  const int64_t bk = bl.k, nblocks = (jhi - jlo + bk - 1) / bk;
  const int64_t nkv = B * Hkv;
  const bool threaded = work_of(p) >= kSplitWork && num_threads() > 1;
  int64_t nsplit = bl.splits > 0 ? bl.splits : (threaded ? (num_threads() + nkv - 1) / nkv : 1);
  nsplit = std::clamp<int64_t>(nsplit, 1, std::max<int64_t>(1, nblocks));
  const int64_t nitems = nkv * nsplit;
  // Per item when the keys are split: the unnormalised output [R, Dv], then the row max and sum [R] each.
  const int64_t part_elems = R * (Dv + 2);
  std::vector<float> part(size_t(nsplit > 1 ? nitems * part_elems : 0));
  parallel_for(0, nitems, threaded ? 1 : nitems, [&](int64_t lo, int64_t hi) {
    std::vector<float> scratch(size_t(D * R + bk * R + 2 * R + R * Dv));
    float* Qs = scratch.data();  // [R, D] scale * Q
    float* Sc = Qs + D * R;      // [R, bk] scores, then P
    float* m = Sc + bk * R;      // [R] running max
    float* l = m + R;            // [R] running sum of exp(s - m)
    float* acc = l + R;          // [R, Dv] unnormalised output
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t bkv = item / nsplit, sp = item % nsplit, b = bkv / Hkv, kvh = bkv % Hkv;
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < T; ++i) {
          const float* qr = Q + b * qsb + (kvh * G + g) * qsh + i * qsr;
          float* qd = Qs + (g * T + i) * D;
          for (int64_t d = 0; d < D; ++d) qd[d] = qr[d] * scale;
        }
      std::fill(m, m + R, ninf);
      std::fill(l, l + R, 0.0f);
      std::fill(acc, acc + R * Dv, 0.0f);
      const float* Kb = K + b * ksb + kvh * ksh;
      const float* Vb = Vp + b * vsb + kvh * vsh;
      const int64_t blo = nblocks * sp / nsplit, bhi = nblocks * (sp + 1) / nsplit;
      for (int64_t blk = blo; blk < bhi; ++blk) {
        const int64_t j0 = jlo + blk * bk, bc = std::min(bk, jhi - j0);
        // S = (scale Q) K^T: a few rows against a key tile (OpenBLAS's small-matrix kernel; the
        // transposed layout K Q^T ran ~5x slower at 8 rows, perf).
        sgemm(false, true, R, bc, D, 1.0f, Qs, D, Kb + j0 * ksr, ksr, 0.0f, Sc, bk);
        const bool causal_cut = p.causal && j0 + bc - 1 > p.diag();
        const bool window_cut = p.window > 0 && j0 <= T - 1 + p.diag() - p.window;
        for (int64_t r = 0; r < R; ++r) {
          const int64_t g = r / T, i = r % T;
          float* row = Sc + r * bk;
          if (causal_cut || window_cut)
            for (int64_t c = 0; c < bc; ++c)
              if (!p.visible(i, j0 + c)) row[c] = ninf;
          if (Mk) {
            const float* mr = Mk + b * p.mask_strides[0] + (kvh * G + g) * p.mask_strides[1] + i * p.mask_strides[2] +
                              j0 * p.mask_strides[3];
            for (int64_t c = 0; c < bc; ++c) row[c] += mr[c * p.mask_strides[3]];
          }
          const float mnew = std::max(m[r], row_max(row, bc));
          // A row that has seen no key yet keeps P = 0: exp(-inf - inf) = 0, where exp(-inf - (-inf)) is NaN.
          const float sb = mnew == ninf ? pinf : mnew;
          const float al = exp_fast(m[r] - sb);  // 0 when m was -inf
          m[r] = mnew;
          for (int64_t c = 0; c < bc; ++c) row[c] = exp_fast(row[c] - sb);
          l[r] = l[r] * al + float(lane_sum<float>(bc, [row](int64_t c) { return row[c]; }));
          if (al != 1.0f) {
            float* orow = acc + r * Dv;
            for (int64_t e = 0; e < Dv; ++e) orow[e] *= al;
          }
        }
        sgemm(false, false, R, Dv, bc, 1.0f, Sc, bk, Vb + j0 * vsr, vsr, 1.0f, acc, Dv);  // acc += P V
      }
      if (nsplit > 1) {
        float* pp = part.data() + item * part_elems;
        std::copy(acc, acc + R * Dv, pp);
        std::copy(m, m + R, pp + R * Dv);
        std::copy(l, l + R, pp + R * Dv + R);
        continue;
      }
      for (int64_t r = 0; r < R; ++r) {
        const int64_t g = r / T, i = r % T;
        float* orow = O + ((b * Hq + kvh * G + g) * T + i) * Dv;
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // a row that sees no key: output 0
        for (int64_t e = 0; e < Dv; ++e) orow[e] = acc[r * Dv + e] * inv;
      }
    }
  });
  if (nsplit == 1) return;
  // Merge the splits of each (batch, kv head): O = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s, M = max_s m_s.
  for (int64_t bkv = 0; bkv < nkv; ++bkv) {
    const int64_t b = bkv / Hkv, kvh = bkv % Hkv;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t g = r / T, i = r % T;
      float* orow = O + ((b * Hq + kvh * G + g) * T + i) * Dv;
      std::fill(orow, orow + Dv, 0.0f);
      float mm = ninf;
      for (int64_t sp = 0; sp < nsplit; ++sp) mm = std::max(mm, part[size_t((bkv * nsplit + sp) * part_elems + R * Dv + r)]);
      if (mm == ninf) continue;  // no split saw a key: output 0
      float lsum = 0;
      for (int64_t sp = 0; sp < nsplit; ++sp) {
        const float* pp = part.data() + (bkv * nsplit + sp) * part_elems;
        const float ms = pp[R * Dv + r];
        if (ms == ninf) continue;
        const float w = exp_fast(ms - mm);
        lsum += w * pp[R * Dv + R + r];
        for (int64_t e = 0; e < Dv; ++e) orow[e] += w * pp[r * Dv + e];
      }
      const float inv = 1.0f / lsum;
      for (int64_t e = 0; e < Dv; ++e) orow[e] *= inv;
    }
  }
}

bool rows_contiguous(const Tensor& t) { return t.stride(3) == 1 || t.size(3) == 1; }

}  // namespace

bool attention_decode_supported(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p) {
  if (q.dtype() != DType::F32 || p.T > 8 || !rows_contiguous(q) || !rows_contiguous(k) || !rows_contiguous(v))
    return false;
  if (p.group() == 1) return true;
  // The grouped kernel hands key and value tiles to GEMMs: rows must not overlap (a broadcast
  // view with row stride 0 takes the tiled kernel, which copies it).
  return p.S <= 1 || (k.stride(2) >= p.D && v.stride(2) >= p.Dv);
}

Tensor attention_decode_forward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionParams& p,
                                const AttentionBlocks& blocks) {
  LMLAB_ASSERT(blocks.k > 0, "attention block sizes must be positive");
  Tensor out = Tensor::empty({p.B, p.Hq, p.T, p.Dv}, DType::F32);
  if (out.numel() == 0) return out;
  if (p.group() == 1) decode_per_head(q, k, v, p, out);
  else decode_grouped(q, k, v, p, blocks, out);
  return out;
}

}  // namespace lmlab::cpu
