// QMatrix (ggml-blocked weight matrices) and qlinear: validation, the f64 reference, and the call
// into the CPU kernels (ops/cpu/qmatmul.cpp). Inference only: nothing here records autograd.
#include "lmlab/ops/qmatmul.h"

#include <cstring>
#include <vector>

#include "lmlab/core/dtype.h"
#include "lmlab/core/node.h"
#include "lmlab/core/parallel.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/mode.h"

namespace lmlab {

using detail::check_defined;
using detail::contig;

namespace {

// A 64-byte aligned owned buffer (the storage allocator's), kept alive by the returned pointer.
std::shared_ptr<uint8_t> alloc_bytes(size_t n) {
  Tensor t = Tensor::empty({int64_t(std::max<size_t>(n, 1))}, DType::U8);
  return std::shared_ptr<uint8_t>(t.storage(), t.data<uint8_t>());
}

void check_type(GgmlType t, const char* what) {
  LMLAB_CHECK(ggml_type_known(uint32_t(t)), DTypeError, "[qmatmul] ", what, ": unknown ggml type ", uint32_t(t));
}

void check_cols(GgmlType t, int64_t rows, int64_t cols, const char* what) {
  LMLAB_CHECK(rows >= 0 && cols >= 0, ValueError, "[qmatmul] ", what, ": negative size [", rows, ", ", cols, "]");
  int64_t bs = ggml_block_size(t);
  LMLAB_CHECK(cols % bs == 0, ValueError, "[qmatmul] ", what, ": a [", rows, ", ", cols, "] matrix cannot be ",
              ggml_type_name(t), ": cols ", cols, " is not a multiple of the block size ", bs);
}

}  // namespace

QMatrix QMatrix::quantize(const Tensor& w, GgmlType type) {
  check_defined(w, "qmatmul", "w");
  check_type(type, "quantize");
  LMLAB_CHECK(w.dim() == 2, ShapeError, "[qmatmul] quantize: expected a 2-D [rows, cols] weight, got ",
              shape_str(w.shape()));
  LMLAB_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::BF16 || w.dtype() == DType::F16, DTypeError,
              "[qmatmul] quantize: expected an f32, bf16 or f16 weight, got ", dtype_name(w.dtype()));
  QMatrix q;
  q.type = type;
  q.rows = w.size(0);
  q.cols = w.size(1);
  check_cols(type, q.rows, q.cols, "quantize");
  Tensor wf = contig(w.dtype() == DType::F32 ? w.detach() : w.detach().to(DType::F32));
  auto buf = alloc_bytes(q.nbytes());
  const float* src = wf.data<float>();
  const size_t rb = q.row_bytes();
  parallel_for(0, q.rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) ggml_quantize(type, src + r * q.cols, buf.get() + size_t(r) * rb, q.cols);
  });
  q.bytes = buf;
  return q;
}

QMatrix QMatrix::wrap(GgmlType type, int64_t rows, int64_t cols, std::shared_ptr<const uint8_t> bytes, size_t size) {
  check_type(type, "wrap");
  check_cols(type, rows, cols, "wrap");
  QMatrix q;
  q.type = type;
  q.rows = rows;
  q.cols = cols;
  LMLAB_CHECK(size == q.nbytes(), ValueError, "[qmatmul] wrap: a ", ggml_type_name(type), " [", rows, ", ", cols,
              "] matrix takes ", q.nbytes(), " bytes, got ", size);
  LMLAB_CHECK(bytes || size == 0, ValueError, "[qmatmul] wrap: null data for ", size, " bytes");
  q.bytes = std::move(bytes);
  return q;
}

// ---- interleaved Q8_0 layout (qmatmul.h) ----
namespace {
constexpr int64_t kGroup = QMatrix::kInterleaveRows;
// Offsets inside one interleaved group of nb blocks.
size_t code_at(int64_t b, int64_t k, int64_t i) { return size_t(b) * 512 + size_t(k / 4) * 64 + size_t(i) * 4 + size_t(k % 4); }
size_t scale_at(int64_t nb, int64_t b, int64_t i) { return size_t(nb) * 512 + size_t(b) * 32 + size_t(i) * 2; }
}  // namespace

bool QMatrix::can_interleave() const {
  return type == GgmlType::Q8_0 && interleave == 0 && rows > 0 && rows % kGroup == 0 && bytes != nullptr;
}

void QMatrix::copy_row(int64_t r, uint8_t* dst) const {
  LMLAB_CHECK(r >= 0 && r < rows, IndexError, "[qmatmul] row ", r, " of a matrix with ", rows, " rows");
  if (interleave == 0) {
    std::memcpy(dst, row(r), row_bytes());
    return;
  }
  const int64_t nb = cols / 32, i = r % kGroup;
  const uint8_t* g = bytes.get() + size_t(r / kGroup) * kGroup * row_bytes();
  for (int64_t b = 0; b < nb; ++b, dst += kQ8_0Bytes) {
    std::memcpy(dst, g + scale_at(nb, b, i), 2);
    for (int64_t q = 0; q < 8; ++q)
      for (int64_t t = 0; t < 4; ++t) dst[2 + 4 * q + t] = uint8_t(g[code_at(b, 4 * q + t, i)] ^ 0x80);
  }
}

void QMatrix::dequantize_rows(int64_t r0, int64_t n, float* out) const {
  LMLAB_CHECK(r0 >= 0 && n >= 0 && r0 + n <= rows, IndexError, "[qmatmul] rows ", r0, "..", r0 + n, " of a matrix with ",
              rows, " rows");
  if (interleave == 0) {
    for (int64_t r = 0; r < n; ++r) ggml_dequantize(type, row(r0 + r), out + r * cols, cols);
    return;
  }
  // Directly from the groups (the same products d * q as ggml's row-major dequantization).
  const int64_t nb = cols / 32;
  const size_t group_bytes = size_t(kGroup) * row_bytes();
  for (int64_t r = r0; r < r0 + n; ++r) {
    const uint8_t* g = bytes.get() + size_t(r / kGroup) * group_bytes;
    const int64_t i = r % kGroup;
    float* o = out + (r - r0) * cols;
    for (int64_t b = 0; b < nb; ++b, o += 32) {
      uint16_t h;
      std::memcpy(&h, g + scale_at(nb, b, i), 2);
      const float d = f16_to_f32(h);
      const uint8_t* c = g + code_at(b, 0, i);
      for (int64_t q = 0; q < 8; ++q)
        for (int64_t t = 0; t < 4; ++t) o[4 * q + t] = d * float(int(c[64 * q + t]) - 128);
    }
  }
}

QMatrix QMatrix::interleaved() const {
  if (!can_interleave()) return *this;
  QMatrix q = *this;
  q.interleave = kGroup;
  auto buf = alloc_bytes(nbytes());
  const int64_t nb = cols / 32;
  const size_t group_bytes = size_t(kGroup) * row_bytes();
  parallel_for(0, rows / kGroup, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t gi = lo; gi < hi; ++gi) {
      uint8_t* g = buf.get() + size_t(gi) * group_bytes;
      for (int64_t i = 0; i < kGroup; ++i) {
        const uint8_t* src = row(gi * kGroup + i);
        for (int64_t b = 0; b < nb; ++b, src += kQ8_0Bytes) {
          std::memcpy(g + scale_at(nb, b, i), src, 2);
          for (int64_t k = 0; k < 32; ++k) g[code_at(b, k, i)] = uint8_t(src[2 + k] ^ 0x80);
        }
      }
    }
  });
  q.bytes = buf;
  return q;
}

QMatrix QMatrix::row_major() const {
  if (interleave == 0) return *this;
  QMatrix q = *this;
  q.interleave = 0;
  auto buf = alloc_bytes(nbytes());
  const size_t rb = row_bytes();
  parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) copy_row(r, buf.get() + size_t(r) * rb);
  });
  q.bytes = buf;
  return q;
}

QMatrix QMatrix::concat_rows(const std::vector<const QMatrix*>& parts) {
  LMLAB_CHECK(!parts.empty(), ValueError, "[qmatmul] concat_rows: no matrices");
  for (size_t i = 0; i < parts.size(); ++i) {
    LMLAB_CHECK(parts[i] != nullptr, ValueError, "[qmatmul] concat_rows: part ", i, " is null");
    LMLAB_CHECK(parts[i]->type == parts[0]->type && parts[i]->cols == parts[0]->cols, ValueError,
                "[qmatmul] concat_rows: part ", i, " is ", ggml_type_name(parts[i]->type), " [", parts[i]->rows, ", ",
                parts[i]->cols, "], part 0 is ", ggml_type_name(parts[0]->type), " [", parts[0]->rows, ", ",
                parts[0]->cols, "]: type and cols must match");
  }
  QMatrix q;
  q.type = parts[0]->type;
  q.cols = parts[0]->cols;
  bool all_interleaved = true;
  for (const QMatrix* p : parts) {
    q.rows += p->rows;
    all_interleaved = all_interleaved && p->interleave != 0;
  }
  q.interleave = all_interleaved ? parts[0]->interleave : 0;
  auto buf = alloc_bytes(q.nbytes());
  size_t off = 0;
  for (const QMatrix* p : parts) {
    // Interleaved groups are whole and contiguous, so interleaved parts stack as bytes too.
    if (p->interleave == q.interleave) {
      if (p->nbytes()) std::memcpy(buf.get() + off, p->bytes.get(), p->nbytes());
    } else {
      for (int64_t r = 0; r < p->rows; ++r) p->copy_row(r, buf.get() + off + size_t(r) * p->row_bytes());
    }
    off += p->nbytes();
  }
  q.bytes = buf;
  return q;
}

Tensor QMatrix::dequantize() const {
  Tensor out = Tensor::empty({rows, cols});
  float* o = out.data<float>();
  parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) { dequantize_rows(lo, hi - lo, o + lo * cols); });
  return out;
}

namespace {

// Shared argument checks; returns x as a contiguous [R, K] f32 matrix.
Tensor check_qlinear(const Tensor& x, const QMatrix& w, const Tensor& bias, const char* op) {
  check_defined(x, op, "x");
  LMLAB_CHECK(x.dtype() == DType::F32, DTypeError, "[", op, "] x must be f32, got ", dtype_name(x.dtype()));
  LMLAB_CHECK(x.dim() >= 1 && x.size(-1) == w.cols, ShapeError, "[", op, "] x ", shape_str(x.shape()), " does not fit the ",
              ggml_type_name(w.type), " weight [", w.rows, ", ", w.cols, "]: expected ", w.cols, " features");
  LMLAB_CHECK(w.bytes || w.nbytes() == 0, ValueError, "[", op, "] the ", ggml_type_name(w.type), " weight [", w.rows,
              ", ", w.cols, "] has no data");
  // Nothing is recorded, so a gradient asked for would silently be missing: refuse instead.
  LMLAB_CHECK(!(x.requires_grad() && GradMode::enabled()), ValueError, "[", op,
              "] x requires grad, but quantized products are inference only (no gradient reaches x or the weight): "
              "run under NoGrad or pass x.detach()");
  if (bias.defined()) {
    LMLAB_CHECK(bias.dtype() == DType::F32 && bias.dim() == 1 && bias.size(0) == w.rows, ShapeError, "[", op,
                "] bias must be f32 [", w.rows, "], got ", dtype_name(bias.dtype()), " ", shape_str(bias.shape()));
  }
  int64_t R = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) R *= x.size(d);
  return contig(x.detach()).reshape({R, w.cols});
}

Shape out_shape(const Tensor& x, int64_t N) {
  Shape s(x.shape().begin(), x.shape().end() - 1);
  s.push_back(N);
  return s;
}

}  // namespace

Tensor qlinear_reference(const Tensor& x, const QMatrix& w, const Tensor& bias) {
  Tensor x2 = check_qlinear(x, w, bias, "qlinear_reference");
  const int64_t R = x2.size(0), N = w.rows, K = w.cols;
  Tensor wf = w.dequantize();
  Tensor bc = bias.defined() ? contig(bias.detach()) : Tensor();
  Tensor y = Tensor::empty({R, N});
  const float* X = x2.data<float>();
  const float* W = wf.data<float>();
  float* Y = y.data<float>();
  for (int64_t r = 0; r < R; ++r)
    for (int64_t n = 0; n < N; ++n) {
      double acc = bc.defined() ? double(bc.data<float>()[n]) : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double(X[r * K + k]) * double(W[n * K + k]);
      Y[r * N + n] = float(acc);
    }
  return y.reshape(out_shape(x, N));
}

Tensor qembedding(const QMatrix& table, const Tensor& ids) {
  check_defined(ids, "qembedding", "ids");
  detail::check_index_dtype(ids, "qembedding", "ids");
  LMLAB_CHECK(table.bytes || table.nbytes() == 0, ValueError, "[qembedding] the ", ggml_type_name(table.type),
              " table [", table.rows, ", ", table.cols, "] has no data");
  Tensor ic = contig(ids);
  const int64_t n = ic.numel(), V = table.rows, C = table.cols;
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    rows[size_t(k)] = detail::index_at(ic, k);
    LMLAB_CHECK(rows[size_t(k)] >= 0 && rows[size_t(k)] < V, IndexError, "[qembedding] id ", rows[size_t(k)],
                " out of range [0, ", V, ") at position ", k);
  }
  Shape out_shape = ids.shape();
  out_shape.push_back(C);
  Tensor out = Tensor::empty(out_shape);
  float* o = out.data<float>();
  parallel_for(0, n, std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) table.dequantize_rows(rows[size_t(k)], 1, o + k * C);
  });
  return out;
}

Tensor qlinear(const Tensor& x, const QMatrix& w, const Tensor& bias) {
  if (reference_mode()) return qlinear_reference(x, w, bias);
  Tensor x2 = check_qlinear(x, w, bias, "qlinear");
  const int64_t R = x2.size(0), N = w.rows, K = w.cols;
  Tensor y = Tensor::empty({R, N});
  float* Y = y.data<float>();
  cpu::qgemm(w, x2.data<float>(), R, K, Y, N);
  if (bias.defined() && R * N > 0) {
    Tensor bc = contig(bias.detach());
    const float* b = bc.data<float>();
    parallel_for(0, R, std::max<int64_t>(1, 16384 / std::max<int64_t>(N, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r)
        for (int64_t n = 0; n < N; ++n) Y[r * N + n] += b[n];
    });
  }
  return y.reshape(out_shape(x, N));
}

}  // namespace lmlab
