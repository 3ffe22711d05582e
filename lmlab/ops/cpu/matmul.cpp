// GEMM kernels. f32/f64: OpenBLAS (OpenMP build, so its threads are lmlab's threads). Each batch
// matrix is handed to BLAS with a transpose flag when it is a transposed view, so no copy is made;
// many small batch matrices run in parallel with single-threaded GEMMs (OpenBLAS goes serial
// inside an OpenMP region). bf16: oneDNN matmul primitives, cached per shape/layout because
// creating one costs far more than a small product.
#include <cblas.h>

#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>

#include "lmlab/ops/cpu/matmul_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/matmul.h"

namespace lmlab::cpu {

using detail::contig;

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
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

// ---- oneDNN bf16 ----
struct DnnlCtx {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::mutex mu;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int>,
           dnnl::matmul>
      cache;
  std::string last_impl = "none";
};
DnnlCtx& dnnl_ctx() {
  static DnnlCtx c;
  return c;
}

void matmul_bf16(const Operand& a, const Operand& b, const Shape& batch, int64_t M, int64_t N, int64_t K,
                 Tensor& out) {
  using dt = dnnl::memory::data_type;
  auto& ctx = dnnl_ctx();
  int64_t nb = numel_of(batch);
  // Collapse the batch to one dim; operands whose batch strides are not uniform are made contiguous.
  auto uniform_stride = [&](const Operand& o, int64_t rows, int64_t cols, int64_t& bs) -> bool {
    if (nb == 1) { bs = rows * cols; return true; }
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
    return bs != 0 || nb == 1;
  };
  Operand A = a, B = b;
  int64_t bsa = 0, bsb = 0;
  if (!uniform_stride(A, M, K, bsa)) {
    Shape s = batch; s.push_back(M); s.push_back(K);
    Tensor e = contig(a.t.expand(s));
    A = prepare(e, batch);
    bsa = M * K;
  }
  if (!uniform_stride(B, K, N, bsb)) {
    Shape s = batch; s.push_back(K); s.push_back(N);
    Tensor e = contig(b.t.expand(s));
    B = prepare(e, batch);
    bsb = K * N;
  }
  dnnl::memory::dims ad = {nb, M, K}, bd = {nb, K, N}, cd = {nb, M, N};
  dnnl::memory::dims as = {bsa, A.trans ? 1 : A.ld, A.trans ? A.ld : 1};
  dnnl::memory::dims bs = {bsb, B.trans ? 1 : B.ld, B.trans ? B.ld : 1};
  dnnl::memory::dims cs = {M * N, N, 1};
  dt cdt = out.dtype() == DType::F32 ? dt::f32 : dt::bf16;
  dnnl::memory::desc amd(ad, dt::bf16, as), bmd(bd, dt::bf16, bs), cmd(cd, cdt, cs);
  dnnl::matmul prim;
  {
    std::lock_guard<std::mutex> lk(ctx.mu);
    auto key = std::make_tuple(nb, M, N, K, as[0] * 4 + (A.trans ? 1 : 0), as[1] + as[2],
                               bs[0] * 4 + (B.trans ? 1 : 0), bs[1] + bs[2], int(cdt), 0);
    auto it = ctx.cache.find(key);
    if (it == ctx.cache.end()) {
      dnnl::matmul::desc d(amd, bmd, cmd);
      dnnl::matmul::primitive_desc pd(d, ctx.eng);
      ctx.last_impl = pd.impl_info_str();
      it = ctx.cache.emplace(key, dnnl::matmul(pd)).first;
    }
    prim = it->second;
  }
  dnnl::memory am(amd, ctx.eng, A.t.raw_data()), bm(bmd, ctx.eng, B.t.raw_data()), cm(cmd, ctx.eng, out.raw_data());
  std::lock_guard<std::mutex> lk(ctx.mu);
  prim.execute(ctx.strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  ctx.strm.wait();
}

}  // namespace

const char* onednn_last_impl() { return dnnl_ctx().last_impl.c_str(); }

Tensor matmul_forward(const Tensor& a, const Tensor& b, const Shape& batch, DType out_dt) {
  int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Shape os = batch;
  os.push_back(M);
  os.push_back(N);
  Tensor out = Tensor::empty(os, out_dt);
  if (out.numel() == 0) return out;
  Operand A = prepare(a, batch), B = prepare(b, batch);
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
