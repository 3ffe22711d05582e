// GEMM kernels. f32/f64: OpenBLAS (OpenMP build, so its threads are lmlab's threads). Each batch
// matrix is handed to BLAS with a transpose flag when it is a transposed view, so no copy is made;
// many small batch matrices run in parallel with single-threaded GEMMs (OpenBLAS goes serial
// inside an OpenMP region). bf16: oneDNN matmul primitives, cached per shape/layout because
// creating one costs far more than a small product; where oneDNN has no bf16 kernel for the CPU
// (or refuses a layout), the f32 path on widened operands.
#include <cblas.h>

#include <atomic>
#include <cstdlib>
#include <dnnl.hpp>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "lmlab/ops/cpu/matmul_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/matmul.h"

namespace lmlab::cpu {

using detail::contig;


// OpenBLAS takes 32-bit sizes (blasint) and reports a bad one only by printing; refuse them here.
static void check_blas_sizes(const char* op, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  const int64_t lim = std::numeric_limits<blasint>::max();
  LMLAB_CHECK(M <= lim && N <= lim && K <= lim && lda <= lim && ldb <= lim && ldc <= lim, BackendError, "[", op,
              "] M ", M, ", N ", N, ", K ", K, " (leading dims ", lda, ", ", ldb, ", ", ldc,
              ") exceed OpenBLAS's 32-bit size limit ", lim);
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  check_blas_sizes("sgemm", M, N, K, lda, ldb, ldc);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
              blasint(N), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
}

namespace {

// A matrix operand as BLAS sees it: base tensor (possibly copied), transpose flag, leading dim,
// and batch strides for each batch dim of the broadcast batch shape.
struct Operand {
  Tensor t;
  bool trans = false;
  int64_t ld = 0;
  Strides bstr;  // per batch dim, in elements (0 where broadcast)
};

Operand prepare(const Tensor& x, const Shape& batch) {
  Operand o;
  int64_t r = x.size(-2), c = x.size(-1);
  int64_t s0 = x.stride(-2), s1 = x.stride(-1);
  Tensor t = x;
  if ((s1 == 1 && (s0 >= std::max<int64_t>(c, 1) || r == 1))) {
    o.trans = false;
    o.ld = r == 1 ? std::max<int64_t>(c, 1) : s0;
  } else if (s0 == 1 && (s1 >= std::max<int64_t>(r, 1) || c == 1)) {
    o.trans = true;
    o.ld = c == 1 ? std::max<int64_t>(r, 1) : s1;
  } else {
    t = contig(x);
    o.trans = false;
    o.ld = std::max<int64_t>(c, 1);
  }
  o.t = t;
  Shape tb(t.shape().begin(), t.shape().end() - 2);
  Strides ts(t.strides().begin(), t.strides().end() - 2);
  o.bstr = broadcast_strides(tb, ts, batch);
  return o;
}

template <class T>
void gemm_t(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
            T* C, int64_t ldc) {
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                blasint(N), blasint(K), 1.0f, A, blasint(lda), B, blasint(ldb), 0.0f, C, blasint(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(M),
                blasint(N), blasint(K), 1.0, A, blasint(lda), B, blasint(ldb), 0.0, C, blasint(ldc));
  }
}

// y[N] = x[K] @ B[K, N], with B stored row-major either as [K, N] (trans = false) or as its
// transpose [N, K] (trans = true, e.g. a Linear weight), leading dimension ld.
template <class T>
void gemv_serial(bool trans, int64_t K, int64_t N, const T* B, int64_t ld, const T* x, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    if (trans) cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(N), blasint(K), 1.0f, B, blasint(ld), x, 1, 0.0f, y, 1);
    else cblas_sgemv(CblasRowMajor, CblasTrans, blasint(K), blasint(N), 1.0f, B, blasint(ld), x, 1, 0.0f, y, 1);
  } else {
    if (trans) cblas_dgemv(CblasRowMajor, CblasNoTrans, blasint(N), blasint(K), 1.0, B, blasint(ld), x, 1, 0.0, y, 1);
    else cblas_dgemv(CblasRowMajor, CblasTrans, blasint(K), blasint(N), 1.0, B, blasint(ld), x, 1, 0.0, y, 1);
  }
}

// Splits the output columns over threads (each GEMV streams its own slice of the weights, so both
// cores' caches and load ports serve a decode step); OpenBLAS runs serially inside the region.
template <class T>
void gemv_t(bool trans, int64_t K, int64_t N, const T* B, int64_t ld, const T* x, T* y) {
  if (N * K < (1 << 15) || N < 64) {
    gemv_serial<T>(trans, K, N, B, ld, x, y);
    return;
  }
  int64_t nt = num_threads();
  int64_t chunk = ((N + nt - 1) / nt + 15) / 16 * 16;
  parallel_for(0, (N + chunk - 1) / chunk, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      int64_t n0 = c * chunk, n = std::min(chunk, N - n0);
      gemv_serial<T>(trans, K, n, trans ? B + n0 * ld : B + n0, ld, x, y + n0);
    }
  });
}

template <class T>
void matmul_blas(const Operand& a, const Operand& b, const Shape& batch, int64_t M, int64_t N, int64_t K,
                 Tensor& out) {
  const T* A = static_cast<const T*>(a.t.raw_data());
  const T* B = static_cast<const T*>(b.t.raw_data());
  T* C = out.data<T>();
  int64_t nb = numel_of(batch);
  if (K == 0) {
    std::fill(C, C + nb * M * N, T(0));
    return;
  }
  auto one = [&](int64_t z) {
    int64_t rem = z, oa = 0, ob = 0;
    for (int64_t d = int64_t(batch.size()) - 1; d >= 0; --d) {
      int64_t k = rem % batch[size_t(d)];
      rem /= batch[size_t(d)];
      oa += k * a.bstr[size_t(d)];
      ob += k * b.bstr[size_t(d)];
    }
    if (M == 1 && !a.trans) {
      // A single row (decoding): GEMV reads the weights once, where GEMM would first pack them.
      gemv_t<T>(b.trans, K, N, B + ob, b.ld, A + oa, C + z * N);
      return;
    }
    gemm_t<T>(a.trans, b.trans, M, N, K, A + oa, a.ld, B + ob, b.ld, C + z * M * N, N);
  };
  // Small matrices, many batches: parallel over batches, single-threaded GEMMs.
  if (nb >= 2 && M * N * K <= 128 * 128 * 128) {
    parallel_for(0, nb, 1, [&](int64_t lo, int64_t hi) { for (int64_t z = lo; z < hi; ++z) one(z); });
  } else {
    for (int64_t z = 0; z < nb; ++z) one(z);
  }
}

// ---- bf16: oneDNN, or f32 on OpenBLAS where oneDNN has no bf16 kernel ----
// oneDNN (2.x) has bf16 matmul kernels only from AVX-512 on; on an AVX2 CPU (most laptops, or
// ONEDNN_MAX_CPU_ISA=AVX2) creating the primitive fails. The product then runs in f32 on OpenBLAS:
// both operands widened exactly (a bf16 value is an f32 whose low 16 bits are zero), so every
// product is exact in f32 and accumulates in f32 as oneDNN's does; only the summation order differs.

using PrimKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int>;

struct DnnlCtx {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::mutex mu;
  std::map<PrimKey, std::optional<dnnl::matmul>> cache;  // nullopt: oneDNN refused this shape/layout
  std::string last_impl = "none";
  int64_t refused = 0;     // shapes oneDNN refused (run in f32 instead)
  std::string last_refusal;
};
DnnlCtx& dnnl_ctx() {
  static DnnlCtx c;
  return c;
}

std::string isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return str_cat("isa#", int(isa));
  }
}

std::string dims_str(const dnnl::memory::dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

// Creates the primitive for these descriptors; nullopt (with the reason) when oneDNN has no
// implementation for them on this CPU. Any other oneDNN failure is a BackendError naming the shapes.
std::optional<dnnl::matmul> create_bf16_matmul(DnnlCtx& ctx, const dnnl::memory::desc& a, const dnnl::memory::desc& b,
                                               const dnnl::memory::desc& c, std::string& why) {
  try {
    dnnl::matmul::desc d(a, b, c);
    dnnl::matmul::primitive_desc pd(d, ctx.eng);
    ctx.last_impl = pd.impl_info_str();
    return dnnl::matmul(pd);
  } catch (const dnnl::error& e) {
    if (e.status == dnnl_unimplemented) {
      why = e.what();
      return std::nullopt;
    }
    throw BackendError(str_cat("[matmul] oneDNN could not create a bf16 matmul for a ", dims_str(a.dims()), " @ b ",
                               dims_str(b.dims()), " -> ", dims_str(c.dims()), ": ", e.what()));
  }
}

Bf16GemmPath probe_bf16_path() {
  Bf16GemmPath p;
  std::string mode = "auto";
  if (const char* env = std::getenv("LMLAB_BF16_GEMM"); env && *env) mode = env;
  LMLAB_CHECK(mode == "auto" || mode == "onednn" || mode == "f32", ConfigError,
              "[matmul] LMLAB_BF16_GEMM must be auto, onednn or f32, got '", mode, "'");
  const std::string isa = isa_name(dnnl::get_effective_cpu_isa());
  if (mode == "f32") {
    p.onednn = false;
    p.why = "LMLAB_BF16_GEMM=f32 (oneDNN's ISA here: " + isa + ")";
    return p;
  }
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto& ctx = dnnl_ctx();
  dnnl::memory::desc a({64, 64}, dt::bf16, tag::ab), b({64, 64}, dt::bf16, tag::ab), c({64, 64}, dt::f32, tag::ab);
  std::string why;
  std::lock_guard<std::mutex> lk(ctx.mu);
  auto prim = create_bf16_matmul(ctx, a, b, c, why);
  p.onednn = prim.has_value();
  p.impl = p.onednn ? ctx.last_impl : "";
  p.why = p.onednn ? "oneDNN has a bf16 matmul for this CPU (ISA " + isa + ")"
                   : "oneDNN has no bf16 matmul for this CPU (ISA " + isa + "): " + why;
  if (!p.onednn && mode == "onednn")
    throw BackendError("[matmul] LMLAB_BF16_GEMM=onednn, but " + p.why);
  return p;
}

std::atomic<int> g_force_f32{0};

// Widens both operands to f32 (views keep their layout; broadcast batch dims stay unexpanded) and
// runs the OpenBLAS path; the result is rounded to `out`'s dtype.
void matmul_bf16_via_f32(const Operand& a, const Operand& b, const Shape& batch, int64_t M, int64_t N, int64_t K,
                         Tensor& out) {
  Operand A = prepare(a.t.to(DType::F32), batch), B = prepare(b.t.to(DType::F32), batch);
  if (out.dtype() == DType::F32) {
    matmul_blas<float>(A, B, batch, M, N, K, out);
    return;
  }
  Tensor o32 = Tensor::empty(out.shape(), DType::F32);
  matmul_blas<float>(A, B, batch, M, N, K, o32);
  copy_into(out, o32);
}

// False when oneDNN has no primitive for this shape/layout (the caller runs the f32 path).
bool matmul_bf16_onednn(const Operand& a, const Operand& b, const Shape& batch, int64_t M, int64_t N, int64_t K,
                        Tensor& out) {
  using dt = dnnl::memory::data_type;
  auto& ctx = dnnl_ctx();
  int64_t nb = numel_of(batch);
  // Collapse the batch to one dim; operands whose batch strides are not uniform are made contiguous.
  auto uniform_stride = [&](const Operand& o, int64_t& bs) -> bool {
    if (nb == 1) { bs = 0; return true; }
    Strides full = contiguous_strides(batch);
    // the operand's batch strides must equal c * contiguous batch strides for a single c
    int64_t c = -1;
    for (size_t d = 0; d < batch.size(); ++d) {
      if (batch[d] == 1) continue;
      if (o.bstr[d] % full[d] != 0) return false;
      int64_t cc = o.bstr[d] / full[d];
      if (c >= 0 && cc != c) return false;
      c = cc;
    }
    bs = c < 0 ? 0 : c;
    return bs != 0;
  };
  Operand A = a, B = b;
  int64_t bsa = 0, bsb = 0;
  if (!uniform_stride(A, bsa)) {
    Shape s = batch; s.push_back(M); s.push_back(K);
    A = prepare(contig(a.t.expand(s)), batch);
    bsa = M * K;
  }
  if (!uniform_stride(B, bsb)) {
    Shape s = batch; s.push_back(K); s.push_back(N);
    B = prepare(contig(b.t.expand(s)), batch);
    bsb = K * N;
  }
  dnnl::memory::dims ad = {nb, M, K}, bd = {nb, K, N}, cd = {nb, M, N};
  dnnl::memory::dims as = {bsa, A.trans ? 1 : A.ld, A.trans ? A.ld : 1};
  dnnl::memory::dims bs = {bsb, B.trans ? 1 : B.ld, B.trans ? B.ld : 1};
  // One batch: its stride is never stepped; give oneDNN the matrix's own extent.
  if (nb == 1) {
    as[0] = (M - 1) * as[1] + (K - 1) * as[2] + 1;
    bs[0] = (K - 1) * bs[1] + (N - 1) * bs[2] + 1;
  }
  dnnl::memory::dims cs = {M * N, N, 1};
  dt cdt = out.dtype() == DType::F32 ? dt::f32 : dt::bf16;
  dnnl::memory::desc amd(ad, dt::bf16, as), bmd(bd, dt::bf16, bs), cmd(cd, cdt, cs);
  std::optional<dnnl::matmul> prim;
  {
    std::lock_guard<std::mutex> lk(ctx.mu);
    auto key = PrimKey(nb, M, N, K, as[0], as[1], as[2], bs[0], bs[1], bs[2], int(cdt));
    auto it = ctx.cache.find(key);
    if (it == ctx.cache.end()) {
      std::string why;
      it = ctx.cache.emplace(key, create_bf16_matmul(ctx, amd, bmd, cmd, why)).first;
      if (!it->second) {
        ++ctx.refused;
        ctx.last_refusal = str_cat("a ", dims_str(ad), " @ b ", dims_str(bd), ": ", why);
      }
    }
    prim = it->second;
  }
  if (!prim) return false;
  try {
    dnnl::memory am(amd, ctx.eng, A.t.raw_data()), bm(bmd, ctx.eng, B.t.raw_data()),
        cm(cmd, ctx.eng, out.raw_data());
    std::lock_guard<std::mutex> lk(ctx.mu);
    prim->execute(ctx.strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    ctx.strm.wait();
  } catch (const dnnl::error& e) {
    throw BackendError(str_cat("[matmul] oneDNN bf16 matmul failed for a ", dims_str(ad), " (strides ", dims_str(as),
                               ") @ b ", dims_str(bd), " (strides ", dims_str(bs), ") -> ",
                               out.dtype() == DType::F32 ? "f32" : "bf16", ": ", e.what()));
  }
  return true;
}

void matmul_bf16(const Operand& a, const Operand& b, const Shape& batch, int64_t M, int64_t N, int64_t K,
                 Tensor& out) {
  if (g_force_f32.load() || !bf16_gemm_path().onednn || !matmul_bf16_onednn(a, b, batch, M, N, K, out))
    matmul_bf16_via_f32(a, b, batch, M, N, K, out);
}

}  // namespace

const char* onednn_last_impl() { return dnnl_ctx().last_impl.c_str(); }

const Bf16GemmPath& bf16_gemm_path() {
  static const Bf16GemmPath p = probe_bf16_path();
  return p;
}

bool bf16_gemm_uses_onednn() { return !g_force_f32.load() && bf16_gemm_path().onednn; }

bool bf16_gemm_force_f32(bool on) { return g_force_f32.exchange(on ? 1 : 0) != 0; }

Bf16GemmStats bf16_gemm_stats() {
  auto& ctx = dnnl_ctx();
  std::lock_guard<std::mutex> lk(ctx.mu);
  return {ctx.refused, ctx.last_refusal};
}

Tensor matmul_forward(const Tensor& a, const Tensor& b, const Shape& batch, DType out_dt) {
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape os = batch;
  os.push_back(M);
  os.push_back(N);
  Tensor out = Tensor::empty(os, out_dt);
  if (out.numel() == 0) return out;
  Operand A = prepare(a, batch), B = prepare(b, batch);
  check_blas_sizes("matmul", M, N, K, A.ld, B.ld, N);
  switch (a.dtype()) {
    case DType::F32: matmul_blas<float>(A, B, batch, M, N, K, out); break;
    case DType::F64: matmul_blas<double>(A, B, batch, M, N, K, out); break;
    case DType::BF16:
      if (K == 0) return Tensor::zeros(os, out_dt);
      matmul_bf16(A, B, batch, M, N, K, out);
      break;
    default:
      throw DTypeError(str_cat("[matmul] unsupported dtype ", dtype_name(a.dtype())));
  }
  return out;
}

}  // namespace lmlab::cpu
