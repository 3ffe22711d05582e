// The chunk-parallel (WY / UT) form of the gated delta rule, forward and backward (Kimi Linear
// Eqs. 4-9; fla `fla/ops/kda/naive.py` naive_chunk_kda, `chunk.py`). Per (b, h) the chunks run in
// order; inside a chunk of L <= C tokens everything is a GEMM (BLAS), a unit-lower triangular solve
// (BLAS trsm) or an O(L * sub-block * dk) loop. The (b, h) pairs run on threads.
// Derivation and the backward: README.md in this folder. Numerics: gates enter only as
// exp(G_r - G_j) with j <= r (never exp(-G) alone), factored around the first position of each
// 16-token sub-block (no factor exceeds 1 between sub-blocks, e^40 inside one) or, for sub-blocks
// with steeper decay, formed pairwise.
#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/softmax_kernels.h"
#include "lmlab/ops/delta_rule/delta_rule_kernels.h"
#include "lmlab/ops/matmul.h"

namespace lmlab::cpu {
namespace {

#ifdef _OPENMP
#define LMLAB_DR_PRAGMA(x) _Pragma(#x)
#define LMLAB_DR_SIMD LMLAB_DR_PRAGMA(omp simd)
#else
#define LMLAB_DR_SIMD
#endif

// Row-major C = alpha op(A) op(B) + beta C.
template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
  }
}

// Solves (I + A) X = B (trans: (I + A)^T X = B) in place for the strictly lower A [M, M]; the
// diagonal stored in A is ignored (unit triangular).
template <class T>
void solve_unit_lower(bool trans, int64_t M, int64_t N, const T* A, int64_t lda, T* B, int64_t ldb) {
  if (M <= 0 || N <= 0) return;
  const auto tr = trans ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, tr, CblasUnit, blasint(M), blasint(N), 1.0f, A, blasint(lda),
                B, blasint(ldb));
  else
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, tr, CblasUnit, blasint(M), blasint(N), 1.0, A, blasint(lda),
                B, blasint(ldb));
}

// sum_c a[c] b[c] over 16 running partial sums: without -ffast-math GCC keeps a single running
// sum in order and will not vectorise it; fixed lanes make the vector form the literal program.
template <class T>
inline T dot(const T* a, const T* b, int64_t n) {
  constexpr int64_t kLanes = 16;
  T acc[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes)
    for (int64_t u = 0; u < kLanes; ++u) acc[u] += a[c + u] * b[c + u];
  T s = 0;
  for (int64_t u = 0; u < kLanes; ++u) s += acc[u];
  for (; c < n; ++c) s += a[c] * b[c];
  return s;
}

// Inside a sub-block the decay is formed pairwise; between sub-blocks it is factored around the
// later sub-block's first position m: exp(G_r - G_j) = exp(G_r - G_m) exp(G_m - G_j), both <= 1.
constexpr int64_t kSubBlock = 16;

// One thread's buffers for a chunk of up to C tokens; row-major, leading dims dk, dv, C or w.
template <class T>
struct Work {
  int64_t C, dk, dv, w;
  std::vector<T> Q, K, V, G, eG, beta, At, P, Am, WU, Delta, Qg, Kl, eR, XR, YK, S, tmp;
  // backward only
  std::vector<T> dS, dSn, dDelta, dKl, dQg, dP, dWU, dA, dKx, dKy, dQp, tmpY, dG, rows;
  Work(int64_t C_, int64_t dk_, int64_t dv_, bool backward) : C(C_), dk(dk_), dv(dv_), w(dk_ + dv_) {
    auto sz = [](int64_t n) { return size_t(n); };
    const int64_t s = std::min(C, kSubBlock);
    for (auto* b : {&Q, &K, &G, &eG, &Qg, &Kl, &YK, &tmp}) b->resize(sz(C * dk));
    V.resize(sz(C * dv));
    Delta.resize(sz(C * dv));
    beta.resize(sz(C));
    for (auto* b : {&At, &P, &Am}) b->resize(sz(C * C));
    WU.resize(sz(C * w));
    eR.resize(sz(s * dk));
    XR.resize(sz(2 * s * dk));
    S.resize(sz(dk * dv));
    if (backward) {
      dS.resize(sz(dk * dv));
      dSn.resize(sz(dk * dv));
      dDelta.resize(sz(C * dv));
      for (auto* b : {&dKl, &dQg, &dKx, &dKy, &dQp, &tmpY, &dG}) b->resize(sz(C * dk));
      for (auto* b : {&dP, &dA}) b->resize(sz(C * C));
      dWU.resize(sz(C * w));
      rows.resize(sz(3 * dk));
    }
  }
};

// Loads chunk [t0, t0 + L) of (b, h): Q = scale q, K, V, beta, G = within-chunk cumsum of g, eG = e^G.
template <class T>
void load_chunk(const DeltaRuleParams& p, const DeltaInputs<T>& in, int64_t b, int64_t h, int64_t t0, int64_t L,
                Work<T>& w) {
  const int64_t dk = p.dk, dv = p.dv;
  const T scale = T(p.scale);
  for (int64_t r = 0; r < L; ++r) {
    const int64_t t = t0 + r;
    const T* q = in.q + p.qk_off(b, t, h);
    const T* k = in.k + p.qk_off(b, t, h);
    T* Qr = w.Q.data() + r * dk;
    T* Kr = w.K.data() + r * dk;
    T* Gr = w.G.data() + r * dk;
    const T* Gp = r > 0 ? Gr - dk : nullptr;
    for (int64_t c = 0; c < dk; ++c) {
      Qr[c] = scale * q[c];
      Kr[c] = k[c];
    }
    switch (p.gate) {
      case DeltaGate::Channel: {
        const T* g = in.g + p.qk_off(b, t, h);
        for (int64_t c = 0; c < dk; ++c) Gr[c] = (Gp ? Gp[c] : T(0)) + g[c];
        break;
      }
      case DeltaGate::Scalar: {
        const T g = in.g[p.bt_off(b, t, h)];
        for (int64_t c = 0; c < dk; ++c) Gr[c] = (Gp ? Gp[c] : T(0)) + g;
        break;
      }
      case DeltaGate::None:
        for (int64_t c = 0; c < dk; ++c) Gr[c] = T(0);
        break;
    }
    LMLAB_DR_SIMD
    for (int64_t c = 0; c < dk; ++c) w.eG[size_t(r * dk + c)] = exp_fast(Gr[c]);
    std::memcpy(w.V.data() + r * dv, in.v + p.v_off(b, t, h), size_t(dv) * sizeof(T));
    w.beta[size_t(r)] = in.beta[p.bt_off(b, t, h)];
  }
}

// Whether sub-block [r0, r0 + n) may be factored around its own first position m too: there
// e^{G_m - G_j} >= 1 for j >= m, bounded by the block's decay span max |G_j - G_m|. While the span
// is <= 40 the factors stay below e^40 ~ 2e17, far from f32 overflow, and every product keeps full
// relative precision, so the diagonal block becomes part of the GEMM. Steeper blocks (g ~ -20 per
// token) are formed pairwise. NaN gates give false (pairwise), which propagates them.
constexpr double kFactorSpan = 40.0;
template <class T>
bool diagonal_factorable(const Work<T>& w, int64_t r0, int64_t n) {
  const int64_t dk = w.dk;
  const T* Gm = w.G.data() + r0 * dk;
  T span = 0;
  for (int64_t j = r0 + 1; j < r0 + n; ++j) {
    const T* Gj = w.G.data() + j * dk;
    for (int64_t c = 0; c < dk; ++c) span = std::max(span, std::abs(Gj[c] - Gm[c]));
  }
  return span <= T(kFactorSpan);
}

// Sub-block R = rows [r0, r0 + n) with reference m = r0: eR = e^{G_R - G_m} [n, dk],
// XR = [K_R eR ; Q_R eR] [2n, dk], YK = K_j e^{G_m - G_j} for j < cols [cols, dk], where cols is m
// (earlier sub-blocks only) or m + n (the diagonal block too, when diagonal_factorable).
template <class T>
void factor_block(Work<T>& w, int64_t r0, int64_t n, int64_t cols) {
  const int64_t dk = w.dk, m = r0;
  const T* Gm = w.G.data() + m * dk;
  for (int64_t r = 0; r < n; ++r) {
    const T* Gr = w.G.data() + (r0 + r) * dk;
    const T* Kr = w.K.data() + (r0 + r) * dk;
    const T* Qr = w.Q.data() + (r0 + r) * dk;
    T* e = w.eR.data() + r * dk;
    T* xk = w.XR.data() + r * dk;
    T* xq = w.XR.data() + (n + r) * dk;
    LMLAB_DR_SIMD
    for (int64_t c = 0; c < dk; ++c) {
      e[c] = exp_fast(Gr[c] - Gm[c]);
      xk[c] = Kr[c] * e[c];
      xq[c] = Qr[c] * e[c];
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    const T* Gj = w.G.data() + j * dk;
    const T* Kj = w.K.data() + j * dk;
    T* y = w.YK.data() + j * dk;
    LMLAB_DR_SIMD
    for (int64_t c = 0; c < dk; ++c) y[c] = Kj[c] * exp_fast(Gm[c] - Gj[c]);
  }
}

// At[r, j] = sum_c K_r K_j e^{G_r - G_j} for j < r (strict: the UT transform's A without beta);
// P[r, j] = sum_c Q_r K_j e^{G_r - G_j} for j <= r (the causal q-k scores, diagonal included).
template <class T>
void pairwise_forward(Work<T>& w, int64_t L) {
  const int64_t C = w.C, dk = w.dk;
  for (int64_t r = 0; r < L; ++r) {
    std::fill_n(w.At.data() + r * C, L, T(0));
    std::fill_n(w.P.data() + r * C, L, T(0));
  }
  for (int64_t r0 = 0; r0 < L; r0 += kSubBlock) {
    const int64_t n = std::min(kSubBlock, L - r0), m = r0;
    const bool diag_gemm = diagonal_factorable(w, r0, n);
    const int64_t cols = diag_gemm ? m + n : m;
    if (cols > 0) {
      factor_block(w, r0, n, cols);
      gemm<T>(false, true, n, cols, dk, T(1), w.XR.data(), dk, w.YK.data(), dk, T(0), w.At.data() + r0 * C, C);
      gemm<T>(false, true, n, cols, dk, T(1), w.XR.data() + n * dk, dk, w.YK.data(), dk, T(0), w.P.data() + r0 * C,
              C);
    }
    if (diag_gemm) {  // causal masks: At strictly below the diagonal, P on and below it
      for (int64_t r = r0; r < r0 + n; ++r) {
        std::fill(w.At.data() + r * C + r, w.At.data() + r * C + m + n, T(0));
        std::fill(w.P.data() + r * C + r + 1, w.P.data() + r * C + m + n, T(0));
      }
      continue;
    }
    for (int64_t r = r0; r < r0 + n; ++r) {
      const T* Gr = w.G.data() + r * dk;
      const T* Kr = w.K.data() + r * dk;
      const T* Qr = w.Q.data() + r * dk;
      for (int64_t j = r0; j <= r; ++j) {
        const T* Gj = w.G.data() + j * dk;
        const T* Kj = w.K.data() + j * dk;
        T* kk = w.tmp.data();
        LMLAB_DR_SIMD
        for (int64_t c = 0; c < dk; ++c) kk[c] = Kj[c] * exp_fast(Gr[c] - Gj[c]);
        if (j < r) w.At[size_t(r * C + j)] = dot(Kr, kk, dk);
        w.P[size_t(r * C + j)] = dot(Qr, kk, dk);
      }
    }
  }
}

// Everything of a chunk that depends on the chunk-start state S (Work::S): Am = beta At,
// [W | U] = (I + Am)^{-1} [beta eG K | beta V], Delta = U - W S, Qg = Q eG, Kl = K e^{G_last - G}.
template <class T>
void chunk_prepare(Work<T>& w, int64_t L) {
  const int64_t C = w.C, dk = w.dk, dv = w.dv, ww = w.w;
  pairwise_forward(w, L);
  for (int64_t r = 0; r < L; ++r) {
    const T bt = w.beta[size_t(r)];
    for (int64_t j = 0; j < r; ++j) w.Am[size_t(r * C + j)] = bt * w.At[size_t(r * C + j)];
    T* wu = w.WU.data() + r * ww;
    const T* K = w.K.data() + r * dk;
    const T* eG = w.eG.data() + r * dk;
    const T* V = w.V.data() + r * dv;
    for (int64_t c = 0; c < dk; ++c) wu[c] = bt * eG[c] * K[c];
    for (int64_t j = 0; j < dv; ++j) wu[dk + j] = bt * V[j];
  }
  solve_unit_lower<T>(false, L, ww, w.Am.data(), C, w.WU.data(), ww);
  for (int64_t r = 0; r < L; ++r)
    std::memcpy(w.Delta.data() + r * dv, w.WU.data() + r * ww + dk, size_t(dv) * sizeof(T));
  gemm<T>(false, false, L, dv, dk, T(-1), w.WU.data(), ww, w.S.data(), dv, T(1), w.Delta.data(), dv);
  const T* Gl = w.G.data() + (L - 1) * dk;
  for (int64_t r = 0; r < L; ++r) {
    const T* G = w.G.data() + r * dk;
    const T* K = w.K.data() + r * dk;
    const T* Q = w.Q.data() + r * dk;
    const T* eG = w.eG.data() + r * dk;
    T* qg = w.Qg.data() + r * dk;
    T* kl = w.Kl.data() + r * dk;
    LMLAB_DR_SIMD
    for (int64_t c = 0; c < dk; ++c) {
      qg[c] = Q[c] * eG[c];
      kl[c] = K[c] * exp_fast(Gl[c] - G[c]);
    }
  }
}

// S <- Diag(e^{G_last}) S + Kl^T Delta (Eq. 8).
template <class T>
void chunk_advance_state(Work<T>& w, int64_t L) {
  const int64_t dk = w.dk, dv = w.dv;
  const T* eGl = w.eG.data() + (L - 1) * dk;
  for (int64_t c = 0; c < dk; ++c)
    for (int64_t j = 0; j < dv; ++j) w.S[size_t(c * dv + j)] *= eGl[c];
  gemm<T>(true, false, dk, dv, L, T(1), w.Kl.data(), dk, w.Delta.data(), dv, T(1), w.S.data(), dv);
}

template <class F>
void for_pairs_parallel(const DeltaRuleParams& p, F&& fn) {
  // Tiny problems (gradchecks, short prompts) stay on one thread: a pair is ~10 T dk dv flops.
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, p.T * p.dk * p.dv));
  parallel_for(0, p.B * p.H, grain, [&](int64_t lo, int64_t hi) { fn(lo, hi); });
}

}  // namespace

template <class T>
void delta_rule_chunked_forward(const DeltaRuleParams& p, const DeltaInputs<T>& in, T* o, T* hT, T* chunk_states) {
  const int64_t C = p.chunk, dk = p.dk, dv = p.dv, NC = p.n_chunks(), ldo = p.H * dv;
  for_pairs_parallel(p, [&](int64_t lo, int64_t hi) {
    Work<T> w(std::min(C, std::max<int64_t>(p.T, 1)), dk, dv, false);
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / p.H, h = bh % p.H;
      if (in.h0) std::memcpy(w.S.data(), in.h0 + p.state_off(b, h), size_t(dk * dv) * sizeof(T));
      else std::fill(w.S.begin(), w.S.end(), T(0));
      for (int64_t ci = 0; ci < NC; ++ci) {
        const int64_t t0 = ci * C, L = std::min(C, p.T - t0);
        if (chunk_states) std::memcpy(chunk_states + (bh * NC + ci) * dk * dv, w.S.data(), size_t(dk * dv) * sizeof(T));
        load_chunk(p, in, b, h, t0, L, w);
        chunk_prepare(w, L);
        // O = Qg S + P Delta (Eq. 9), written straight into o's [B, T, H, dv] rows.
        T* out = o + p.v_off(b, t0, h);
        gemm<T>(false, false, L, dv, dk, T(1), w.Qg.data(), dk, w.S.data(), dv, T(0), out, ldo);
        gemm<T>(false, false, L, dv, L, T(1), w.P.data(), w.C, w.Delta.data(), dv, T(1), out, ldo);
        chunk_advance_state(w, L);
      }
      std::memcpy(hT + p.state_off(b, h), w.S.data(), size_t(dk * dv) * sizeof(T));
    }
  });
}

// Reverse over chunks; dS = dL/d(state at the chunk's end). Per chunk (README.md, "Chunked backward"):
//   dDelta = Kl dS + P^T dO;  dKl = Delta dS^T;  dQg = dO S^T;  dP = tril(dO Delta^T)
//   dS_prev = e^{G_last} dS + Qg^T dO - W^T dDelta;  [dW | dU] = [-dDelta S^T | dDelta]
//   [dBk | dBv] = (I + Am)^{-T} [dW | dU];  dAm = -strict_tril([dBk | dBv] [W | U]^T)
//   then beta, the pairwise products and the e^G factors, and dg = reverse cumsum of dG.
template <class T>
void delta_rule_chunked_backward(const DeltaRuleParams& p, const DeltaInputs<T>& in, const T* chunk_states,
                                 const T* dO, const T* dhT, const DeltaGrads<T>& gr) {
  const int64_t C = p.chunk, dk = p.dk, dv = p.dv, NC = p.n_chunks(), ldo = p.H * dv;
  for_pairs_parallel(p, [&](int64_t lo, int64_t hi) {
    Work<T> w(std::min(C, std::max<int64_t>(p.T, 1)), dk, dv, true);
    const int64_t Cw = w.C, ww = w.w;
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / p.H, h = bh % p.H;
      if (dhT) std::memcpy(w.dS.data(), dhT + p.state_off(b, h), size_t(dk * dv) * sizeof(T));
      else std::fill(w.dS.begin(), w.dS.end(), T(0));
      for (int64_t ci = NC - 1; ci >= 0; --ci) {
        const int64_t t0 = ci * C, L = std::min(C, p.T - t0);
        std::memcpy(w.S.data(), chunk_states + (bh * NC + ci) * dk * dv, size_t(dk * dv) * sizeof(T));
        load_chunk(p, in, b, h, t0, L, w);
        chunk_prepare(w, L);
        const T* dOc = dO + p.v_off(b, t0, h);
        const T* eGl = w.eG.data() + (L - 1) * dk;
        // Output and state-update terms.
        gemm<T>(false, false, L, dv, dk, T(1), w.Kl.data(), dk, w.dS.data(), dv, T(0), w.dDelta.data(), dv);
        gemm<T>(true, false, L, dv, L, T(1), w.P.data(), Cw, dOc, ldo, T(1), w.dDelta.data(), dv);
        gemm<T>(false, true, L, dk, dv, T(1), w.Delta.data(), dv, w.dS.data(), dv, T(0), w.dKl.data(), dk);
        gemm<T>(false, true, L, dk, dv, T(1), dOc, ldo, w.S.data(), dv, T(0), w.dQg.data(), dk);
        gemm<T>(false, true, L, L, dv, T(1), dOc, ldo, w.Delta.data(), dv, T(0), w.dP.data(), Cw);
        for (int64_t r = 0; r < L; ++r) std::fill_n(w.dP.data() + r * Cw + r + 1, L - r - 1, T(0));
        // dG of the last row: e^{G_last} S term (the Kl term is added below).
        std::vector<T>& dG = w.dG;
        std::fill_n(dG.begin(), L * dk, T(0));
        T* dGl = dG.data() + (L - 1) * dk;
        for (int64_t c = 0; c < dk; ++c) {
          T acc = 0;
          for (int64_t j = 0; j < dv; ++j) {
            const T d = w.dS[size_t(c * dv + j)];
            acc += d * w.S[size_t(c * dv + j)];
            w.dSn[size_t(c * dv + j)] = eGl[c] * d;
          }
          dGl[c] += eGl[c] * acc;
        }
        gemm<T>(true, false, dk, dv, L, T(1), w.Qg.data(), dk, dOc, ldo, T(1), w.dSn.data(), dv);
        gemm<T>(true, false, dk, dv, L, T(-1), w.WU.data(), ww, w.dDelta.data(), dv, T(1), w.dSn.data(), dv);
        // Through Delta = U - W S and the UT solve.
        gemm<T>(false, true, L, dk, dv, T(-1), w.dDelta.data(), dv, w.S.data(), dv, T(0), w.dWU.data(), ww);
        for (int64_t r = 0; r < L; ++r)
          std::memcpy(w.dWU.data() + r * ww + dk, w.dDelta.data() + r * dv, size_t(dv) * sizeof(T));
        solve_unit_lower<T>(true, L, ww, w.Am.data(), Cw, w.dWU.data(), ww);
        gemm<T>(false, true, L, L, ww, T(-1), w.dWU.data(), ww, w.WU.data(), ww, T(0), w.dA.data(), Cw);
        // beta: dA . At (rows), dBv . V, dBk . eG K; then dAt = beta dA (strict lower only).
        for (int64_t r = 0; r < L; ++r) {
          const T bt = w.beta[size_t(r)];
          T db = 0;
          T* dAr = w.dA.data() + r * Cw;
          for (int64_t j = 0; j < r; ++j) {
            db += dAr[j] * w.At[size_t(r * Cw + j)];
            dAr[j] *= bt;
          }
          std::fill_n(dAr + r, L - r, T(0));
          const T* dBk = w.dWU.data() + r * ww;
          const T* dBv = dBk + dk;
          const T* K = w.K.data() + r * dk;
          const T* eG = w.eG.data() + r * dk;
          const T* V = w.V.data() + r * dv;
          for (int64_t c = 0; c < dk; ++c) db += dBk[c] * eG[c] * K[c];
          for (int64_t j = 0; j < dv; ++j) db += dBv[j] * V[j];
          if (gr.dbeta) gr.dbeta[p.bt_off(b, t0 + r, h)] = db;
          if (gr.dv) {
            T* dvo = gr.dv + p.v_off(b, t0 + r, h);
            for (int64_t j = 0; j < dv; ++j) dvo[j] = bt * dBv[j];
          }
        }
        // Pairwise products At (K, K, strict) and P (Q, K, with diagonal): dKx / dQp are the
        // row-side gradients, dKy the column-side ones.
        std::fill_n(w.dKx.begin(), L * dk, T(0));
        std::fill_n(w.dKy.begin(), L * dk, T(0));
        std::fill_n(w.dQp.begin(), L * dk, T(0));
        for (int64_t r0 = 0; r0 < L; r0 += kSubBlock) {
          const int64_t n = std::min(kSubBlock, L - r0), m = r0;
          // Same split as pairwise_forward; dA and dP are already zero outside the causal masks.
          const bool diag_gemm = diagonal_factorable(w, r0, n);
          const int64_t cols = diag_gemm ? m + n : m;
          if (cols > 0) {
            factor_block(w, r0, n, cols);
            const T* dAR = w.dA.data() + r0 * Cw;
            const T* dPR = w.dP.data() + r0 * Cw;
            gemm<T>(false, false, n, dk, cols, T(1), dAR, Cw, w.YK.data(), dk, T(0), w.tmp.data(), dk);
            for (int64_t i = 0; i < n * dk; ++i) w.dKx[size_t(r0 * dk + i)] += w.eR[size_t(i)] * w.tmp[size_t(i)];
            gemm<T>(false, false, n, dk, cols, T(1), dPR, Cw, w.YK.data(), dk, T(0), w.tmp.data(), dk);
            for (int64_t i = 0; i < n * dk; ++i) w.dQp[size_t(r0 * dk + i)] += w.eR[size_t(i)] * w.tmp[size_t(i)];
            gemm<T>(true, false, cols, dk, n, T(1), dAR, Cw, w.XR.data(), dk, T(0), w.tmpY.data(), dk);
            gemm<T>(true, false, cols, dk, n, T(1), dPR, Cw, w.XR.data() + n * dk, dk, T(1), w.tmpY.data(), dk);
            const T* Gm = w.G.data() + m * dk;
            for (int64_t j = 0; j < cols; ++j) {
              const T* Gj = w.G.data() + j * dk;
              const T* ty = w.tmpY.data() + j * dk;
              T* dky = w.dKy.data() + j * dk;
              LMLAB_DR_SIMD
              for (int64_t c = 0; c < dk; ++c) dky[c] += exp_fast(Gm[c] - Gj[c]) * ty[c];
            }
          }
          if (diag_gemm) continue;
          for (int64_t r = r0; r < r0 + n; ++r) {
            const T* Gr = w.G.data() + r * dk;
            const T* Kr = w.K.data() + r * dk;
            const T* Qr = w.Q.data() + r * dk;
            T* dkx = w.dKx.data() + r * dk;
            T* dqp = w.dQp.data() + r * dk;
            for (int64_t j = r0; j <= r; ++j) {
              const T a = w.dA[size_t(r * Cw + j)], pp = w.dP[size_t(r * Cw + j)];
              if (a == T(0) && pp == T(0)) continue;
              const T* Gj = w.G.data() + j * dk;
              const T* Kj = w.K.data() + j * dk;
              T* dky = w.dKy.data() + j * dk;
              LMLAB_DR_SIMD
              for (int64_t c = 0; c < dk; ++c) {
                const T e = exp_fast(Gr[c] - Gj[c]);
                dkx[c] += a * Kj[c] * e;
                dqp[c] += pp * Kj[c] * e;
                dky[c] += (a * Kr[c] + pp * Qr[c]) * e;
              }
            }
          }
        }
        // Gather dq, dk and dG (the Kl terms of G_last summed in rows[2 dk, 3 dk) apart, so the
        // row loop has no aliasing store); then dg = reverse cumsum of dG inside the chunk.
        const T* Gl = w.G.data() + (L - 1) * dk;
        std::fill_n(w.rows.begin() + 2 * dk, dk, T(0));
        for (int64_t r = 0; r < L; ++r) {
          const T bt = w.beta[size_t(r)];
          const T* K = w.K.data() + r * dk;
          const T* Q = w.Q.data() + r * dk;
          const T* G = w.G.data() + r * dk;
          const T* eG = w.eG.data() + r * dk;
          const T* qg = w.Qg.data() + r * dk;
          const T* kl = w.Kl.data() + r * dk;
          const T* dBk = w.dWU.data() + r * ww;
          const T* dkl = w.dKl.data() + r * dk;
          const T* dqg = w.dQg.data() + r * dk;
          const T* dkx = w.dKx.data() + r * dk;
          const T* dky = w.dKy.data() + r * dk;
          const T* dqp = w.dQp.data() + r * dk;
          T* dGr = dG.data() + r * dk;
          T* dQ = w.rows.data();
          T* dK = dQ + dk;
          T* kls = dK + dk;
          const T scale = T(p.scale);
          LMLAB_DR_SIMD
          for (int64_t c = 0; c < dk; ++c) {
            dQ[c] = scale * (dqp[c] + dqg[c] * eG[c]);
            dK[c] = dkx[c] + dky[c] + bt * eG[c] * dBk[c] + dkl[c] * exp_fast(Gl[c] - G[c]);
            const T klterm = dkl[c] * kl[c];
            dGr[c] += K[c] * (dkx[c] - dky[c]) + Q[c] * dqp[c] + dBk[c] * bt * eG[c] * K[c] + dqg[c] * qg[c] - klterm;
            kls[c] += klterm;
          }
          if (gr.dq) std::memcpy(gr.dq + p.qk_off(b, t0 + r, h), dQ, size_t(dk) * sizeof(T));
          if (gr.dk) std::memcpy(gr.dk + p.qk_off(b, t0 + r, h), dK, size_t(dk) * sizeof(T));
        }
        for (int64_t c = 0; c < dk; ++c) dGl[c] += w.rows[size_t(2 * dk + c)];
        if (gr.dg && p.gate != DeltaGate::None) {
          for (int64_t r = L - 2; r >= 0; --r)
            for (int64_t c = 0; c < dk; ++c) dG[size_t(r * dk + c)] += dG[size_t((r + 1) * dk + c)];
          for (int64_t r = 0; r < L; ++r) {
            const T* dGr = dG.data() + r * dk;
            if (p.gate == DeltaGate::Channel) {
              std::memcpy(gr.dg + p.qk_off(b, t0 + r, h), dGr, size_t(dk) * sizeof(T));
            } else {
              T s = 0;
              for (int64_t c = 0; c < dk; ++c) s += dGr[c];
              gr.dg[p.bt_off(b, t0 + r, h)] = s;
            }
          }
        }
        std::swap(w.dS, w.dSn);
      }
      if (gr.dh0) std::memcpy(gr.dh0 + p.state_off(b, h), w.dS.data(), size_t(dk * dv) * sizeof(T));
    }
  });
}

template void delta_rule_chunked_forward<float>(const DeltaRuleParams&, const DeltaInputs<float>&, float*, float*,
                                                float*);
template void delta_rule_chunked_forward<double>(const DeltaRuleParams&, const DeltaInputs<double>&, double*,
                                                 double*, double*);
template void delta_rule_chunked_backward<float>(const DeltaRuleParams&, const DeltaInputs<float>&, const float*,
                                                 const float*, const float*, const DeltaGrads<float>&);
template void delta_rule_chunked_backward<double>(const DeltaRuleParams&, const DeltaInputs<double>&, const double*,
                                                  const double*, const double*, const DeltaGrads<double>&);

}  // namespace lmlab::cpu
