// Scans and triangular masks: cumsum (f32/f64) and tril/triu (any dtype, moved as raw bytes) with
// torch.cumsum / torch.tril / torch.triu semantics. Backward: cumsum's is the reverse cumsum of g,
// tril/triu apply the same mask to g. Fast kernels: ops/cpu/scan.cpp.
#include "lmlab/ops/scan.h"

#include <algorithm>
#include <cstring>

#include "lmlab/ops/cpu/scan_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

// ---- cumsum ----
// Reference: per row along d (logical indices), a double accumulator.
void cumsum_ref(const Tensor& x, int64_t d, bool reverse, const Tensor& out) {
  int64_t n = x.size(d);
  Shape rows_shape = x.shape();
  rows_shape[size_t(d)] = 1;
  LMLAB_DISPATCH_FLOAT(x.dtype(), "cumsum", [&] {
    const scalar_t* xp = static_cast<const scalar_t*>(x.raw_data());
    scalar_t* op = out.data<scalar_t>();
    for (int64_t r = 0; r < numel_of(rows_shape); ++r) {
      int64_t xb = offset_of(r, rows_shape, x.strides()), ob = offset_of(r, rows_shape, out.strides());
      double acc = 0;
      for (int64_t s = 0; s < n; ++s) {
        int64_t j = reverse ? n - 1 - s : s;
        acc += double(xp[xb + j * x.stride(d)]);
        op[ob + j * out.stride(d)] = scalar_t(acc);
      }
    }
  });
}

// Inclusive scan of x along d, forward or reverse; no autograd.
Tensor cumsum_raw(const Tensor& x, int64_t d, bool reverse) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  if (reference_mode()) {
    cumsum_ref(x, d, reverse, out);
    return out;
  }
  Tensor xc = contig(x);
  int64_t O = 1, I = 1;
  for (int64_t a = 0; a < d; ++a) O *= x.size(a);
  for (int64_t a = d + 1; a < x.dim(); ++a) I *= x.size(a);
  cpu::cumsum_forward(x.dtype(), xc.raw_data(), out.raw_data(), O, x.size(d), I, reverse);
  return out;
}

// ---- tril / triu ----
bool keep(int64_t m, int64_t c, int64_t diagonal, bool lower) {
  return lower ? c - m <= diagonal : c - m >= diagonal;
}

void tri_ref(const Tensor& x, int64_t diagonal, bool lower, const Tensor& out) {
  size_t es = dtype_size(x.dtype());
  const uint8_t* xp = static_cast<const uint8_t*>(x.raw_data());
  uint8_t* op = static_cast<uint8_t*>(out.raw_data());
  int64_t M = x.size(-2), N = x.size(-1);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t c = i % N, m = (i / N) % M;
    if (keep(m, c, diagonal, lower))
      std::memcpy(op + size_t(i) * es, xp + size_t(offset_of(i, x.shape(), x.strides())) * es, es);
    else
      std::memset(op + size_t(i) * es, 0, es);  // all-zero bytes are 0 in every lmlab dtype
  }
}

Tensor tri_raw(const Tensor& x, int64_t diagonal, bool lower) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  int64_t M = x.size(-2), N = x.size(-1);
  // Offsets beyond the matrix act like +-infinity; clamping keeps the kernels' index maths in range.
  diagonal = std::clamp<int64_t>(diagonal, -M - 1, N + 1);
  if (reference_mode()) {
    tri_ref(x, diagonal, lower, out);
  } else {
    Tensor xc = contig(x);
    int64_t B = (M * N != 0) ? x.numel() / (M * N) : 0;
    cpu::tri_forward(xc.raw_data(), out.raw_data(), B, M, N, diagonal, lower, dtype_size(x.dtype()));
  }
  return out;
}

Tensor tri(const Tensor& x, int64_t diagonal, bool lower, const char* op) {
  check_defined(x, op, "x");
  LMLAB_CHECK(x.dim() >= 2, ShapeError, "[", op, "] expected a tensor with at least 2 dims, got ",
              shape_str(x.shape()));
  Tensor out = tri_raw(x, diagonal, lower);
  return record(out, op, {x}, {}, [diagonal, lower](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{tri_raw(g, diagonal, lower)};
  });
}

}  // namespace

Tensor cumsum(const Tensor& x, int64_t dim) {
  check_float(x, "cumsum", "x");
  int64_t d = wrap_dim(dim, x.dim(), "cumsum");
  if (x.dim() == 0) return cumsum(x.reshape({1}), 0).reshape({});
  Tensor out = cumsum_raw(x, d, false);
  // y_j = sum_{t <= j} x_t  =>  dL/dx_t = sum_{j >= t} g_j, the reverse cumsum.
  return record(out, "cumsum", {x}, {}, [d](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{cumsum_raw(g, d, true)};
  });
}

Tensor tril(const Tensor& x, int64_t diagonal) { return tri(x, diagonal, true, "tril"); }
Tensor triu(const Tensor& x, int64_t diagonal) { return tri(x, diagonal, false, "triu"); }

}  // namespace lmlab
