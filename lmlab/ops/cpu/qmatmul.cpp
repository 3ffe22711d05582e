// qgemm: y = x w^T for a QMatrix w. Quantized weights, M below the dense threshold: activations
// quantized once per call (ops/cpu/qmatmul_kernels.h), then integer block dot products, threads
// over weight rows. M = 1 (decode) streams every weight row once; M > 1 runs tiles of 4 activation
// rows x 1 weight row over L1-sized chunks of weight rows, so a loaded block serves 4 rows.
// Interleaved Q8_0 weights (QMatrix::interleaved, laid out at model load) run 16 weight rows per
// kernel call instead (qgemm_groups), threads over the groups.
// From kDenseMinRows rows on, panels of weight rows are dequantized to bf16 and multiplied by
// oneDNN (AMX): measured faster there (numbers below). Dense weights: f32 on OpenBLAS, bf16 on
// oneDNN (M > 1), f16 through f32 panels and sgemm (M > 1); M = 1 on a widening dot kernel. Where
// oneDNN has no bf16 matmul (cpu::bf16_gemm_path(), e.g. AVX2 CPUs), every bf16 panel path above
// uses f32 panels and sgemm instead (memory stays bounded by the panel, never a widened matrix).
// The dot-product kernels come from the fastest set this CPU runs (AVX-512 VNNI > AVX2 > portable,
// checked once at run time; LMLAB_QGEMM_ISA or qgemm_force_isa pick another).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "lmlab/core/dtype.h"
#include "lmlab/core/parallel.h"
#include "lmlab/core/storage.h"
#include "lmlab/ops/cpu/matmul_kernels.h"
#include "lmlab/ops/cpu/qmatmul_kernels.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/qmatmul.h"

namespace lmlab::cpu {

namespace {

// Measured with bench/bench_qmatmul (threshold_*), N = 2048, K = 768, one thread (the 2-core
// machine was shared, so per-thread times were the stable figure), microseconds int / dense:
//   Q4_K  M=8: 290 / 663   M=16: 579 / 685   M=32: 1153 / 736   M=64: 2313 / 860
//   Q8_0  M=8: 397 / 657   M=16: 788 / 672   M=32: 1563 / 725   M=64: 3144 / 840
// The dense path costs a fixed ~0.65 ms (dequantizing 1.5M weights to bf16) plus an AMX GEMM that
// is ~8x faster per row than the integer kernels; the crossover is at M ~ 13 (Q8_0) to 19 (Q4_K).
constexpr int64_t kDenseMinRows = 16;

std::atomic<int64_t> g_dense_min_rows{kDenseMinRows};

// The kernel sets this CPU runs, fastest first.
const std::vector<const qk::KernelSet*>& usable_sets() {
  static const std::vector<const qk::KernelSet*> sets = [] {
    std::vector<const qk::KernelSet*> v;
    for (const qk::KernelSet* k : {qk::avx512_kernels(), qk::avx2_kernels()})
      if (k) v.push_back(k);
    v.push_back(&qk::portable_kernels());
    return v;
  }();
  return sets;
}

std::string usable_names() {
  std::string s;
  for (const qk::KernelSet* k : usable_sets()) s += str_cat(s.empty() ? "" : ", ", k->name);
  return s;
}

const qk::KernelSet& find_set(const std::string& name, const char* where) {
  for (const qk::KernelSet* k : usable_sets())
    if (name == k->name) return *k;
  throw ValueError(str_cat("[qgemm] ", where, " names the kernel set '", name, "'; this CPU runs: ", usable_names()));
}

// The fastest set, or the one LMLAB_QGEMM_ISA names (read once).
const qk::KernelSet& default_set() {
  static const qk::KernelSet* d = [] {
    const char* e = std::getenv("LMLAB_QGEMM_ISA");
    return e && *e ? &find_set(e, "LMLAB_QGEMM_ISA") : usable_sets().front();
  }();
  return *d;
}

std::atomic<const qk::KernelSet*> g_forced{nullptr};

const qk::KernelSet& kernels() {
  const qk::KernelSet* f = g_forced.load();
  return f ? *f : default_set();
}

constexpr int64_t kStreamGrainBytes = 32 << 10;  // less weight than this per thread is not worth a thread
constexpr int64_t kChunkBytes = 16 << 10;        // weight rows per M > 1 chunk: about half of L1d
constexpr int64_t kRowGroup = 64;                // activation rows per M > 1 work item
constexpr int64_t kPanelBytes = 4 << 20;         // bf16 weight panel for the dense path

// Activation rows quantized once per call; parallel over rows.
struct QActs {
  Tensor buf;
  qk::QRows rows;
};
QActs quantize_acts(const float* x, int64_t M, int64_t ldx, int64_t K, int64_t block) {
  QActs a;
  size_t stride = qk::QRows::row_stride(K, block);
  a.buf = Tensor::empty({int64_t(stride) * M}, DType::U8);
  uint8_t* base = a.buf.data<uint8_t>();
  a.rows = qk::QRows{base, stride, K, block};
  parallel_for(0, M, std::max<int64_t>(1, 8192 / std::max<int64_t>(K, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m) qk::quantize_act_row(x + m * ldx, K, block, base + size_t(m) * stride);
  });
  return a;
}

void qgemm_int(const QMatrix& w, qk::QTileFn tile, int64_t block, const float* x, int64_t M, int64_t ldx,
               float* y, int64_t ldy) {
  const int64_t N = w.rows, K = w.cols;
  const int64_t rb = int64_t(w.row_bytes());
  const uint8_t* wb = w.bytes.get();
  QActs xa = quantize_acts(x, M, ldx, K, block);
  const qk::QRows& xr = xa.rows;
  if (M == 1) {
    parallel_for(0, N, std::max<int64_t>(1, kStreamGrainBytes / rb), [&](int64_t lo, int64_t hi) {
      for (int64_t n = lo; n < hi; ++n) tile(wb + n * rb, K, xr, 0, 1, y + n, ldy);
    });
    return;
  }
  // Work item = (chunk of weight rows, group of activation rows), chunk-major, so a thread's range
  // covers whole chunks where there are enough of them and still splits when N is small.
  const int64_t nc = std::clamp<int64_t>(kChunkBytes / rb, 4, 64);
  const int64_t nchunks = (N + nc - 1) / nc, ngroups = (M + kRowGroup - 1) / kRowGroup;
  parallel_for(0, nchunks * ngroups, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) {
      int64_t n0 = (it / ngroups) * nc, n1 = std::min(N, n0 + nc);
      int64_t g0 = (it % ngroups) * kRowGroup, g1 = std::min(M, g0 + kRowGroup);
      for (int64_t m0 = g0; m0 < g1; m0 += qk::kMaxTileRows) {
        int nx = int(std::min<int64_t>(qk::kMaxTileRows, g1 - m0));
        for (int64_t n = n0; n < n1; ++n) tile(wb + n * rb, K, xr, m0, nx, y + m0 * ldy + n, ldy);
      }
    }
  });
}

void gemv_dense(const QMatrix& w, qk::DotFn dot, const float* x, float* y) {
  const int64_t rb = int64_t(w.row_bytes());
  const uint8_t* wb = w.bytes.get();
  parallel_for(0, w.rows, std::max<int64_t>(1, kStreamGrainBytes / std::max<int64_t>(rb, 1)),
               [&](int64_t lo, int64_t hi) {
                 for (int64_t n = lo; n < hi; ++n) y[n] = dot(wb + n * rb, x, w.cols);
               });
}

// Interleaved Q8_0 (QMatrix::interleave == 16): threads over groups of 16 weight rows; each group
// runs against up to kMaxTileRows activation rows per pass, so its weights stream once per pass.
void qgemm_groups(const QMatrix& w, qk::QGroupFn group, const float* x, int64_t M, int64_t ldx, float* y,
                  int64_t ldy) {
  const int64_t K = w.cols, G = w.interleave;
  const int64_t gb = int64_t(w.row_bytes()) * G;  // bytes per group
  const uint8_t* wb = w.bytes.get();
  QActs xa = quantize_acts(x, M, ldx, K, qk::kQ8Block);
  const qk::QRows& xr = xa.rows;
  parallel_for(0, w.rows / G, std::max<int64_t>(1, kStreamGrainBytes / gb), [&](int64_t lo, int64_t hi) {
    for (int64_t m0 = 0; m0 < M; m0 += qk::kMaxTileRows) {
      int nx = int(std::min<int64_t>(qk::kMaxTileRows, M - m0));
      for (int64_t g = lo; g < hi; ++g) group(wb + g * gb, K, xr, m0, nx, y + m0 * ldy + g * G, ldy);
    }
  });
}

Tensor to_bf16_rows(const float* x, int64_t M, int64_t ldx, int64_t K) {
  Tensor t = Tensor::empty({M, K}, DType::BF16);
  uint16_t* p = static_cast<uint16_t*>(t.raw_data());
  parallel_for(0, M, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t m = lo; m < hi; ++m)
      for (int64_t k = 0; k < K; ++k) p[m * K + k] = f32_to_bf16(x[m * ldx + k]);
  });
  return t;
}

// out [M, n] (contiguous) into columns n0.. of y.
void scatter_cols(const Tensor& out, int64_t M, int64_t n, float* y, int64_t ldy) {
  const float* o = out.data<float>();
  for (int64_t m = 0; m < M; ++m) std::copy(o + m * n, o + (m + 1) * n, y + m * ldy);
}

// Panels of weight rows dequantized (to bf16 for oneDNN, or f32 for sgemm when `f32`).
void qgemm_panels(const QMatrix& w, bool f32, const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) {
  const int64_t N = w.rows, K = w.cols;
  const int64_t P = std::min(N, std::max<int64_t>(16, kPanelBytes / (K * (f32 ? 4 : 2)) / 16 * 16));
  Tensor xb = f32 ? Tensor() : to_bf16_rows(x, M, ldx, K);
  Tensor panel = Tensor::empty({P, K}, f32 ? DType::F32 : DType::BF16);
  for (int64_t p0 = 0; p0 < N; p0 += P) {
    const int64_t np = std::min(P, N - p0);
    parallel_for(0, np, std::max<int64_t>(1, 16384 / K), [&](int64_t lo, int64_t hi) {
      std::vector<float> tmp(f32 ? 0 : size_t(K));
      for (int64_t r = lo; r < hi; ++r) {
        if (f32) {
          w.dequantize_rows(p0 + r, 1, panel.data<float>() + r * K);
          continue;
        }
        w.dequantize_rows(p0 + r, 1, tmp.data());
        uint16_t* dst = static_cast<uint16_t*>(panel.raw_data()) + r * K;
        for (int64_t k = 0; k < K; ++k) dst[k] = f32_to_bf16(tmp[size_t(k)]);
      }
    });
    if (f32) {
      sgemm(false, true, M, np, K, 1.0f, x, ldx, panel.data<float>(), K, 0.0f, y + p0, ldy);
    } else {
      Tensor wt = panel.narrow(0, 0, np).transpose(0, 1);  // [K, np] view, passed to oneDNN as a transpose
      scatter_cols(matmul_forward(xb, wt, {}, DType::F32), M, np, y + p0, ldy);
    }
  }
}

void gemm_bf16(const QMatrix& w, const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) {
  auto st = std::make_shared<Storage>(const_cast<uint8_t*>(w.bytes.get()), w.nbytes(),
                                      std::shared_ptr<void>(w.bytes, const_cast<uint8_t*>(w.bytes.get())));
  Tensor wt = Tensor::from_storage(st, {w.rows, w.cols}, {w.cols, 1}, 0, DType::BF16).transpose(0, 1);
  scatter_cols(matmul_forward(to_bf16_rows(x, M, ldx, w.cols), wt, {}, DType::F32), M, w.rows, y, ldy);
}

void gemm_f32(const QMatrix& w, const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) {
  sgemm(false, true, M, w.rows, w.cols, 1.0f, x, ldx, reinterpret_cast<const float*>(w.bytes.get()), w.cols, 0.0f, y,
        ldy);
}

}  // namespace

const char* qgemm_isa() { return kernels().name; }

std::vector<std::string> qgemm_isas() {
  std::vector<std::string> v;
  for (const qk::KernelSet* k : usable_sets()) v.emplace_back(k->name);
  return v;
}

std::string qgemm_force_isa(const std::string& name) {
  const qk::KernelSet* k = name.empty() ? nullptr : &find_set(name, "qgemm_force_isa");
  const qk::KernelSet* prev = g_forced.exchange(k);
  return prev ? prev->name : "";
}

bool qgemm_force_portable(bool on) { return qgemm_force_isa(on ? "portable" : "") == "portable"; }

int64_t qgemm_set_dense_min_rows(int64_t m) { return g_dense_min_rows.exchange(m); }

void qgemm(const QMatrix& w, const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) {
  const int64_t N = w.rows, K = w.cols;
  LMLAB_CHECK(M >= 0 && ldx >= K && ldy >= N, ValueError, "[qgemm] bad sizes: M ", M, ", ldx ", ldx, " for K ", K,
              ", ldy ", ldy, " for N ", N);
  LMLAB_CHECK(w.bytes || w.nbytes() == 0, ValueError, "[qgemm] ", ggml_type_name(w.type), " weight [", N, ", ", K,
              "] has no data");
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m) std::fill(y + m * ldy, y + m * ldy + N, 0.0f);
    return;
  }
  const qk::KernelSet& ks = kernels();
  const bool dense = M >= g_dense_min_rows.load();
  if (w.interleave != 0) {
    LMLAB_CHECK(w.type == GgmlType::Q8_0 && w.interleave == QMatrix::kInterleaveRows && w.rows % w.interleave == 0,
                ValueError, "[qgemm] a ", ggml_type_name(w.type), " [", N, ", ", K, "] weight interleaved by ",
                w.interleave, ": only Q8_0 in groups of ", QMatrix::kInterleaveRows, " rows is defined");
    if (dense) qgemm_panels(w, !bf16_gemm_uses_onednn(), x, M, ldx, y, ldy);
    else qgemm_groups(w, ks.q8_0x16, x, M, ldx, y, ldy);
    return;
  }
  switch (w.type) {
    case GgmlType::F32:
      // M = 1 on the own dot kernel rather than BLAS sgemv, whose per-row arithmetic depends on
      // where a thread's slice starts (results would change with the thread count).
      if (M == 1) gemv_dense(w, ks.f32, x, y);
      else gemm_f32(w, x, M, ldx, y, ldy);
      return;
    case GgmlType::BF16:
      if (M == 1) gemv_dense(w, ks.bf16, x, y);
      else if (bf16_gemm_uses_onednn()) gemm_bf16(w, x, M, ldx, y, ldy);
      else qgemm_panels(w, true, x, M, ldx, y, ldy);  // no oneDNN bf16 here: f32 panels, bounded memory
      return;
    case GgmlType::F16:
      if (M == 1) gemv_dense(w, ks.f16, x, y);
      else qgemm_panels(w, true, x, M, ldx, y, ldy);
      return;
    case GgmlType::Q4_0:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: break;
  }
  if (dense) {
    qgemm_panels(w, !bf16_gemm_uses_onednn(), x, M, ldx, y, ldy);
    return;
  }

  switch (w.type) {
    case GgmlType::Q4_0: qgemm_int(w, ks.q4_0, qk::kQ8Block, x, M, ldx, y, ldy); return;
    case GgmlType::Q8_0: qgemm_int(w, ks.q8_0, qk::kQ8Block, x, M, ldx, y, ldy); return;
    case GgmlType::Q4_K: qgemm_int(w, ks.q4_K, qk::kQ8KBlock, x, M, ldx, y, ldy); return;
    case GgmlType::Q6_K: qgemm_int(w, ks.q6_K, qk::kQ8KBlock, x, M, ldx, y, ldy); return;
    default: break;
  }
  throw DTypeError(str_cat("[qgemm] unsupported weight type ", ggml_type_name(w.type)));
}

}  // namespace lmlab::cpu
