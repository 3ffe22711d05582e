// Fast fused attention on CPU: FlashAttention-2 (Dao 2023) forward (Algorithm 1: online softmax over
// key tiles, only O and the row logsumexp are written) and backward (Algorithm 2: P recomputed per
// tile from q, k and the logsumexp). Tile products run on single-threaded BLAS GEMMs (OpenBLAS's
// small-matrix kernels) inside an OpenMP loop; the T x S score matrix never exists, only per-thread tiles.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "lmlab/ops/cpu/attention_kernels.h"
#include "lmlab/ops/cpu/softmax_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/matmul.h"

namespace lmlab::cpu {

using detail::contig;

namespace {

thread_local AttentionBlocks g_blocks;

// Row-major C = alpha * op(A) op(B) + beta * C on one thread's tile.
template <class T>
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                 int64_t ldb, T beta, T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
  }
}

// A dot product as an OpenMP simd reduction: without -ffast-math the compiler may not reorder a
// running sum on its own, so it would not vectorise it; the pragma allows exactly that.
#ifdef _OPENMP
#define LMLAB_ATTN_PRAGMA(x) _Pragma(#x)
#define LMLAB_ATTN_SIMD_REDUCE(op, var) LMLAB_ATTN_PRAGMA(omp simd reduction(op : var))
#else
#define LMLAB_ATTN_SIMD_REDUCE(op, var)
#endif

template <class T>
inline T row_dot(const T* a, const T* b, int64_t n) {
  T s = 0;
  LMLAB_ATTN_SIMD_REDUCE(+, s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Applies the causal / window rules (when the tile crosses them) and the additive mask to a score
// tile s [br, bc] (leading dim ld) holding queries i0.. and keys j0..; hidden scores become -inf.
template <class T>
void mask_tile(T* s, int64_t ld, int64_t br, int64_t bc, int64_t i0, int64_t j0, const AttentionParams& p,
               bool need_vis, const T* mask_bh) {
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < br; ++r) {
    int64_t i = i0 + r;
    T* row = s + r * ld;
    if (need_vis) {
      // visible keys of query i form one interval [jmin, jmax]
      int64_t jmax = p.causal ? i + p.diag() : j0 + bc - 1;
      int64_t jmin = p.window > 0 ? i + p.diag() - p.window + 1 : j0;
      int64_t c_lo = std::clamp<int64_t>(jmin - j0, 0, bc), c_hi = std::clamp<int64_t>(jmax - j0 + 1, 0, bc);
      if (c_hi < c_lo) c_hi = c_lo;
      for (int64_t c = 0; c < c_lo; ++c) row[c] = ninf;
      for (int64_t c = c_hi; c < bc; ++c) row[c] = ninf;
    }
    if (mask_bh) {
      const int64_t ms2 = p.mask_strides[2], ms3 = p.mask_strides[3];
      const T* mr = mask_bh + i * ms2 + j0 * ms3;
      if (ms3 == 1) {
        for (int64_t c = 0; c < bc; ++c) row[c] += mr[c];
      } else {
        for (int64_t c = 0; c < bc; ++c) row[c] += mr[c * ms3];
      }
    }
  }
}

// The same for a transposed tile st [bc, br] (rows: keys j0.., columns: queries i0..), the layout
// the forward keeps (see forward_kernel).
template <class T>
void mask_tile_t(T* st, int64_t ld, int64_t bc, int64_t br, int64_t j0, int64_t i0, const AttentionParams& p,
                 bool need_vis, const T* mask_bh) {
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t c = 0; c < bc; ++c) {
    int64_t j = j0 + c;
    T* row = st + c * ld;
    if (need_vis) {
      // queries that see key j form one interval [imin, imax]
      int64_t imin = p.causal ? j - p.diag() : i0;
      int64_t imax = p.window > 0 ? j - p.diag() + p.window - 1 : i0 + br - 1;
      int64_t r_lo = std::clamp<int64_t>(imin - i0, 0, br), r_hi = std::clamp<int64_t>(imax - i0 + 1, 0, br);
      if (r_hi < r_lo) r_hi = r_lo;
      for (int64_t r = 0; r < r_lo; ++r) row[r] = ninf;
      for (int64_t r = r_hi; r < br; ++r) row[r] = ninf;
    }
    if (mask_bh) {
      const int64_t ms2 = p.mask_strides[2];
      const T* mc = mask_bh + j * p.mask_strides[3] + i0 * ms2;
      for (int64_t r = 0; r < br; ++r) row[r] += mc[r * ms2];
    }
  }
}

// Whether tile [i0, i0+br) x [j0, j0+bc) holds any pair hidden by the causal or window rule.
inline bool tile_needs_visibility(const AttentionParams& p, int64_t i0, int64_t br, int64_t j0, int64_t bc) {
  bool causal_cut = p.causal && j0 + bc - 1 > i0 + p.diag();
  bool window_cut = p.window > 0 && j0 <= i0 + br - 1 + p.diag() - p.window;
  return causal_cut || window_cut;
}

// Runs `work(item, slot)` for items [0, n) on the OpenMP threads with a shared atomic queue (tiles
// have unequal cost under causal masks, so a static split would leave one thread idle). `slot` is
// unique per running thread and indexes its scratch.
template <class F>
void dynamic_for(int64_t n, int64_t nslots, F&& work) {
  std::atomic<int64_t> next{0};
  parallel_for(0, nslots, 1, [&](int64_t lo, int64_t) {
    for (;;) {
      int64_t item = next.fetch_add(1, std::memory_order_relaxed);
      if (item >= n) break;
      work(item, lo);
    }
  });
}

// Per-thread scratch, in elements. Forward: Q^T [D, bq], S^T [bk, bq], five [bq] row vectors.
// Backward: K^T [D, bk], V^T [Dv, bk], P [bq, bk], dP [bq, bk].
inline int64_t forward_slot_elems(const AttentionParams& p, const AttentionBlocks& bl) {
  return p.D * bl.q + bl.k * bl.q + 5 * bl.q;
}
inline int64_t backward_slot_elems(const AttentionParams& p, const AttentionBlocks& bl) {
  return (p.D + p.Dv) * bl.k + 2 * bl.q * bl.k;
}

// dst [cols, rows] (leading dim ldd) = src [rows, cols]^T (leading dim lds).
template <class T>
inline void transpose(const T* src, int64_t rows, int64_t cols, int64_t lds, T* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

template <class T>
const T* mask_base(const AttentionParams& p, int64_t b, int64_t h) {
  if (!p.mask.defined()) return nullptr;
  return static_cast<const T*>(p.mask.raw_data()) + b * p.mask_strides[0] + h * p.mask_strides[1];
}

// Why these layouts: OpenBLAS 0.3.21 runs small products on unpacked "small-matrix" kernels, except
// for a row-major A B^T (its column-major TN) once the result exceeds 1200 elements, which goes
// through the packing path at about half the speed (perf: packing took a third of the time).
// So no GEMM below is an A B^T: the forward transposes its query tile once and computes S^T = K Q^T
// as K @ (Q^T); the backward transposes each key tile of K and V once and reuses it for every query tile.

// ---- forward: one work item = (b, h, query tile) ----
// The tile is kept transposed, S^T [keys, queries]: the online-softmax statistics of a query are
// then updated by elementwise vector ops along a row of S^T (no horizontal reductions), and
// O += P V is (S^T)^T V.
template <class T>
void forward_kernel(const T* q, const T* k, const T* v, T* out, T* lse, const AttentionParams& p,
                    const AttentionBlocks& bl, T* scratch, int64_t nslots) {
  const int64_t B = p.B, Hq = p.Hq, Hkv = p.Hkv, T_ = p.T, S = p.S, D = p.D, Dv = p.Dv, G = p.group();
  const int64_t bq = bl.q, bk = bl.k, nqb = (T_ + bq - 1) / bq;
  const int64_t slot_elems = forward_slot_elems(p, bl);
  const T scale = T(p.scale);
  const T ninf = -std::numeric_limits<T>::infinity(), pinf = std::numeric_limits<T>::infinity();
  dynamic_for(B * Hq * nqb, nslots, [&](int64_t item, int64_t slot) {
    // Last query tiles first: under a causal mask they see the most keys, so the queue ends on cheap items.
    const int64_t qb = nqb - 1 - item / (B * Hq), bh = item % (B * Hq);
    const int64_t b = bh / Hq, h = bh % Hq, kvh = h / G;
    const int64_t i0 = qb * bq, br = std::min(bq, T_ - i0);
    T* Qt = scratch + slot * slot_elems;  // [D, bq] scale * Q^T
    T* St = Qt + D * bq;                  // [bc, bq] S^T, then P^T
    T* m = St + bk * bq;                  // [br] running max per query
    T* l = m + bq;                        // [br] running sum of exp(s - m)
    T* mx = l + bq;                       // [br] max of this key tile, then the new running max
    T* sub = mx + bq;                     // [br] what exp subtracts (+inf while the query saw nothing)
    T* alpha = sub + bq;                  // [br] rescale factor of the old accumulator
    const T* K = k + (b * Hkv + kvh) * S * D;
    const T* V = v + (b * Hkv + kvh) * S * Dv;
    T* O = out + (bh * T_ + i0) * Dv;  // the output rows double as the accumulator
    T* L = lse + bh * T_ + i0;
    const T* mask_bh = mask_base<T>(p, b, h);
    transpose(q + (bh * T_ + i0) * D, br, D, D, Qt, bq);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t r = 0; r < br; ++r) Qt[d * bq + r] *= scale;
    std::fill(O, O + br * Dv, T(0));
    std::fill(m, m + br, ninf);
    std::fill(l, l + br, T(0));
    // Keys any query of this tile can see: tiles above the diagonal / before the window are skipped.
    int64_t jlo = 0, jhi = S;
    if (p.causal) jhi = std::clamp<int64_t>(i0 + br + p.diag(), 0, S);
    if (p.window > 0) jlo = std::clamp<int64_t>(i0 + p.diag() - p.window + 1, 0, S);
    for (int64_t j0 = jlo; j0 < jhi; j0 += bk) {
      const int64_t bc = std::min(bk, jhi - j0);
      gemm<T>(false, false, bc, br, D, T(1), K + j0 * D, D, Qt, bq, T(0), St, bq);  // S^T = K (scale Q^T)
      bool need_vis = tile_needs_visibility(p, i0, br, j0, bc);
      if (need_vis || mask_bh) mask_tile_t<T>(St, bq, bc, br, j0, i0, p, need_vis, mask_bh);
      std::copy(m, m + br, mx);
      for (int64_t c = 0; c < bc; ++c) {
        const T* row = St + c * bq;
        for (int64_t r = 0; r < br; ++r) mx[r] = mx[r] < row[r] ? row[r] : mx[r];
      }
      for (int64_t r = 0; r < br; ++r) {
        // A query that has seen no key yet keeps P = 0 (and l = 0, O = 0): exp(-inf - inf) = 0,
        // where exp(-inf - (-inf)) would be NaN.
        sub[r] = mx[r] == ninf ? pinf : mx[r];
        alpha[r] = exp_fast(m[r] - sub[r]);  // 0 when m was -inf
        m[r] = mx[r];
        l[r] *= alpha[r];
      }
      for (int64_t c = 0; c < bc; ++c) {  // P^T = exp(S^T - m); l += column sums
        T* row = St + c * bq;
        for (int64_t r = 0; r < br; ++r) {
          row[r] = exp_fast(row[r] - sub[r]);
          l[r] += row[r];
        }
      }
      for (int64_t r = 0; r < br; ++r) {
        if (alpha[r] == T(1)) continue;
        T* orow = O + r * Dv;
        for (int64_t e = 0; e < Dv; ++e) orow[e] *= alpha[r];
      }
      gemm<T>(true, false, br, Dv, bc, T(1), St, bq, V + j0 * Dv, Dv, T(1), O, Dv);  // O += (P^T)^T V
    }
    for (int64_t r = 0; r < br; ++r) {
      T* orow = O + r * Dv;
      if (l[r] > T(0)) {
        T inv = T(1) / l[r];
        for (int64_t e = 0; e < Dv; ++e) orow[e] *= inv;
        L[r] = m[r] + std::log(l[r]);
      } else {  // the query sees no key: output 0, logsumexp -inf
        std::fill(orow, orow + Dv, T(0));
        L[r] = ninf;
      }
    }
  });
}

// ---- backward: one work item = (b, kv head, key-tile group); writes its own dK, dV rows ----
// Row layout P [queries, keys]; each key tile's K^T and V^T are built once per item and serve
// every query head of the group and every query tile: S = Q K^T and dP = dO V^T are plain products,
// dV += P^T dO and dK += dS^T Q are transposed-A products (fast in OpenBLAS), dQ += dS K is plain.
template <class T>
void backward_kernel(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* go, T* dq, T* dk,
                     T* dv, T* dq_part, T* di, const AttentionParams& p, const AttentionBlocks& bl, int64_t nsplit,
                     T* scratch, int64_t nslots) {
  const int64_t B = p.B, Hq = p.Hq, Hkv = p.Hkv, T_ = p.T, S = p.S, D = p.D, Dv = p.Dv, G = p.group();
  const int64_t bq = bl.q, bk = bl.k, nkb = (S + bk - 1) / bk;
  const int64_t slot_elems = backward_slot_elems(p, bl);
  const T scale = T(p.scale);
  const T ninf = -std::numeric_limits<T>::infinity(), pinf = std::numeric_limits<T>::infinity();
  // Di = rowsum(dO * O) [B, Hq, T]: the softmax-backward row term, one dot product per query.
  parallel_for(0, B * Hq * T_, nslots > 1 ? 256 : B * Hq * T_, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) di[r] = row_dot(go + r * Dv, out + r * Dv, Dv);
  });
  dynamic_for(B * Hkv * nsplit, nslots, [&](int64_t item, int64_t slot) {
    const int64_t bkv = item / nsplit, c = item % nsplit;
    const int64_t b = bkv / Hkv, kvh = bkv % Hkv;
    T* Kt = scratch + slot * slot_elems;  // [D, bc] K^T of the key tile
    T* Vt = Kt + D * bk;                  // [Dv, bc] V^T of the key tile
    T* P = Vt + Dv * bk;                  // [br, bk] probabilities
    T* dP = P + bq * bk;                  // [br, bk] dP, then dS
    const T* K = k + bkv * S * D;
    const T* V = v + bkv * S * Dv;
    T* dK = dk + bkv * S * D;
    T* dV = dv + bkv * S * Dv;
    // Key tiles c, c + nsplit, ...: interleaved so the groups get similar work under a causal mask.
    for (int64_t jb = c; jb < nkb; jb += nsplit) {
      const int64_t j0 = jb * bk, bc = std::min(bk, S - j0);
      // Queries that see at least one key of this tile.
      int64_t ilo = 0, ihi = T_;
      if (p.causal) ilo = std::clamp<int64_t>(j0 - p.diag(), 0, T_);
      if (p.window > 0) ihi = std::clamp<int64_t>(j0 + bc - 1 - p.diag() + p.window, 0, T_);
      if (ilo >= ihi) continue;
      transpose(K + j0 * D, bc, D, D, Kt, bk);
      transpose(V + j0 * Dv, bc, Dv, Dv, Vt, bk);
      for (int64_t g = 0; g < G; ++g) {
        const int64_t h = kvh * G + g, bh = b * Hq + h;
        const T* Q = q + bh * T_ * D;
        const T* dO = go + bh * T_ * Dv;
        const T* L = lse + bh * T_;
        const T* Di = di + bh * T_;
        // Split c > 0 accumulates dQ privately (another thread may own this head's other key tiles).
        T* dQ = c == 0 ? dq + bh * T_ * D : dq_part + ((bkv * (nsplit - 1) + (c - 1)) * G + g) * T_ * D;
        const T* mask_bh = mask_base<T>(p, b, h);
        for (int64_t i0 = ilo; i0 < ihi; i0 += bq) {
          const int64_t br = std::min(bq, ihi - i0);
          const T* Qi = Q + i0 * D;
          const T* dOi = dO + i0 * Dv;
          gemm<T>(false, false, br, bc, D, scale, Qi, D, Kt, bk, T(0), P, bk);  // S = scale Q K^T
          bool need_vis = tile_needs_visibility(p, i0, br, j0, bc);
          if (need_vis || mask_bh) mask_tile<T>(P, bk, br, bc, i0, j0, p, need_vis, mask_bh);
          for (int64_t r = 0; r < br; ++r) {  // P = exp(S - L), already normalised
            // exp(s - inf) = 0 gives the zero row of a query without keys (L = -inf).
            const T lr = L[i0 + r] == ninf ? pinf : L[i0 + r];
            T* row = P + r * bk;
            for (int64_t cc = 0; cc < bc; ++cc) row[cc] = exp_fast(row[cc] - lr);
          }
          gemm<T>(true, false, bc, Dv, br, T(1), P, bk, dOi, Dv, T(1), dV + j0 * Dv, Dv);  // dV += P^T dO
          gemm<T>(false, false, br, bc, Dv, T(1), dOi, Dv, Vt, bk, T(0), dP, bk);  // dP = dO V^T
          for (int64_t r = 0; r < br; ++r) {  // dS = P * (dP - Di); the scale goes into the GEMMs below
            const T* prow = P + r * bk;
            T* drow = dP + r * bk;
            const T d = Di[i0 + r];
            for (int64_t cc = 0; cc < bc; ++cc) drow[cc] = prow[cc] * (drow[cc] - d);
          }
          gemm<T>(true, false, bc, D, br, scale, dP, bk, Qi, D, T(1), dK + j0 * D, D);  // dK += dS^T Q
          gemm<T>(false, false, br, D, bc, scale, dP, bk, K + j0 * D, D, T(1), dQ + i0 * D, D);  // dQ += dS K
        }
      }
    }
  });
  if (nsplit > 1) {  // dQ += the private partials of splits 1..nsplit-1
    const int64_t head = T_ * D;
    parallel_for(0, B * Hkv * G, nslots > 1 ? 1 : B * Hkv * G, [&](int64_t lo, int64_t hi) {
      for (int64_t x = lo; x < hi; ++x) {
        const int64_t bkv = x / G, g = x % G, bh = (bkv / Hkv) * Hq + (bkv % Hkv) * G + g;
        T* dst = dq + bh * head;
        for (int64_t c = 1; c < nsplit; ++c) {
          const T* src = dq_part + ((bkv * (nsplit - 1) + (c - 1)) * G + g) * head;
          for (int64_t e = 0; e < head; ++e) dst[e] += src[e];
        }
      }
    });
  }
}

// Threads to use: one for small problems, where waking the OpenMP team costs more than the work
// (and, on a loaded machine, can wait a whole scheduler slice for the second core).
int64_t attention_slots(const AttentionParams& p) {
  double flops = 2.0 * double(p.B * p.Hq) * double(p.T) * double(p.S) * double(p.D + p.Dv);
  return flops < double(1 << 21) ? 1 : std::max(1, num_threads());
}

// Contiguous input (copying a strided view); adds the copy to `bytes`.
Tensor contig_counted(const Tensor& t, size_t& bytes) {
  if (t.is_contiguous()) return t;
  bytes += t.nbytes();
  return contig(t);
}

}  // namespace

AttentionBlocks attention_blocks() { return g_blocks; }
ScopedAttentionBlocks::ScopedAttentionBlocks(AttentionBlocks b) : prev_(g_blocks) { g_blocks = b; }
ScopedAttentionBlocks::~ScopedAttentionBlocks() { g_blocks = prev_; }

std::pair<Tensor, Tensor> attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                            const AttentionParams& p, const AttentionBlocks& blocks) {
  LMLAB_ASSERT(blocks.q > 0 && blocks.k > 0, "attention block sizes must be positive");
  Tensor out = Tensor::empty({p.B, p.Hq, p.T, p.Dv}, q.dtype());
  Tensor lse = Tensor::empty({p.B, p.Hq, p.T}, q.dtype());
  size_t bytes = 0;
  Tensor qc = contig_counted(q, bytes), kc = contig_counted(k, bytes), vc = contig_counted(v, bytes);
  const int64_t nslots = attention_slots(p);
  LMLAB_DISPATCH_FLOAT(q.dtype(), "attention", [&] {
    std::vector<scalar_t> scratch(size_t(nslots * forward_slot_elems(p, blocks)));
    bytes += scratch.size() * sizeof(scalar_t);
    if (out.numel() > 0)
      forward_kernel<scalar_t>(qc.data<scalar_t>(), kc.data<scalar_t>(), vc.data<scalar_t>(), out.data<scalar_t>(),
                               lse.data<scalar_t>(), p, blocks, scratch.data(), nslots);
  });
  set_attention_workspace_bytes(bytes);
  return {out, lse};
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& grad_out, const AttentionParams& p,
                                  const AttentionBlocks& blocks) {
  LMLAB_ASSERT(blocks.q > 0 && blocks.k > 0, "attention block sizes must be positive");
  AttentionGrads gr;
  gr.dq = Tensor::zeros(q.shape(), q.dtype());
  gr.dk = Tensor::zeros(k.shape(), k.dtype());
  gr.dv = Tensor::zeros(v.shape(), v.dtype());
  size_t bytes = 0;
  Tensor qc = contig_counted(q, bytes), kc = contig_counted(k, bytes), vc = contig_counted(v, bytes);
  Tensor oc = contig_counted(out, bytes), lc = contig_counted(lse, bytes);
  Tensor gc = grad_out.dtype() == q.dtype() ? contig_counted(grad_out, bytes) : grad_out.to(q.dtype()).contiguous();
  const int64_t nslots = attention_slots(p);
  // Key-tile groups per kv head: one when there are enough (b, kv head) items to keep every thread
  // busy; otherwise split the key tiles into about 2 items per thread (each extra group costs a
  // private dQ partial [G, T, D], so no more than needed).
  const int64_t nkb = (p.S + blocks.k - 1) / blocks.k, items = p.B * p.Hkv;
  int64_t nsplit = blocks.splits;
  if (nsplit <= 0) nsplit = items >= 2 * nslots ? 1 : (2 * nslots + items - 1) / items;
  nsplit = std::clamp<int64_t>(nsplit, 1, std::max<int64_t>(nkb, 1));
  LMLAB_DISPATCH_FLOAT(q.dtype(), "attention", [&] {
    using T = scalar_t;
    std::vector<T> scratch(size_t(nslots * backward_slot_elems(p, blocks)));
    std::vector<T> di(size_t(p.B * p.Hq * p.T));
    std::vector<T> part(size_t((nsplit - 1) * items * p.group() * p.T * p.D), T(0));
    bytes += (scratch.size() + di.size() + part.size()) * sizeof(T);
    if (q.numel() > 0 && k.numel() > 0)
      backward_kernel<T>(qc.data<T>(), kc.data<T>(), vc.data<T>(), oc.data<T>(), lc.data<T>(), gc.data<T>(),
                         gr.dq.data<T>(), gr.dk.data<T>(), gr.dv.data<T>(), part.data(), di.data(), p, blocks, nsplit,
                         scratch.data(), nslots);
  });
  set_attention_workspace_bytes(bytes);
  return gr;
}

}  // namespace lmlab::cpu
