// Joining and splitting: concat/stack copy (any dtype, moved as raw bytes), split/chunk are narrow()
// views whose backward is the view's own. Semantics of torch.cat / torch.stack / torch.split /
// torch.chunk. Fast kernel: ops/cpu/join.cpp (memcpy of row blocks).
#include "lmlab/ops/join.h"

#include <algorithm>
#include <cstring>

#include "lmlab/ops/cpu/join_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

// ---- validation ----
// Checks the inputs agree in dtype, rank and every size but dim; sets d (wrapped dim) and returns
// the output shape.
Shape concat_shape(const std::vector<Tensor>& xs, int64_t dim, const char* op, int64_t& d) {
  LMLAB_CHECK(!xs.empty(), ValueError, "[", op, "] expected a non-empty list of tensors");
  for (size_t k = 0; k < xs.size(); ++k)
    LMLAB_CHECK(xs[k].defined(), ValueError, "[", op, "] tensor ", k, " is undefined");
  const Tensor& x0 = xs[0];
  LMLAB_CHECK(x0.dim() > 0, ShapeError, "[", op, "] zero-dimensional tensor (tensor 0) cannot be concatenated");
  d = wrap_dim(dim, x0.dim(), op);
  Shape out = x0.shape();
  out[size_t(d)] = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    LMLAB_CHECK(x.dtype() == x0.dtype(), DTypeError, "[", op, "] tensor ", k, " has dtype ", dtype_name(x.dtype()),
                ", expected ", dtype_name(x0.dtype()), " (tensor 0)");
    LMLAB_CHECK(x.dim() == x0.dim(), ShapeError, "[", op, "] tensor ", k, " ", shape_str(x.shape()),
                " has a different rank from tensor 0 ", shape_str(x0.shape()));
    for (int64_t i = 0; i < x.dim(); ++i)
      LMLAB_CHECK(i == d || x.size(i) == x0.size(i), ShapeError, "[", op, "] tensor ", k, " ",
                  shape_str(x.shape()), " differs from tensor 0 ", shape_str(x0.shape()), " in dim ", i,
                  " (only dim ", d, " may differ)");
    out[size_t(d)] += x.size(d);
  }
  return out;
}

// ---- reference kernel: each output element finds its input by its coordinate along d ----
void concat_ref(const std::vector<Tensor>& xs, int64_t d, const Tensor& out) {
  size_t es = dtype_size(out.dtype());
  const Shape& os = out.shape();
  uint8_t* op = static_cast<uint8_t*>(out.raw_data());
  std::vector<int64_t> start(xs.size() + 1, 0);
  for (size_t k = 0; k < xs.size(); ++k) start[k + 1] = start[k] + xs[k].size(d);
  std::vector<int64_t> c(os.size());
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t rem = i;
    for (int64_t a = int64_t(os.size()) - 1; a >= 0; --a) {
      c[size_t(a)] = rem % os[size_t(a)];
      rem /= os[size_t(a)];
    }
    size_t k = 0;
    while (c[size_t(d)] >= start[k + 1]) ++k;
    const Tensor& x = xs[k];
    int64_t off = 0;
    for (size_t a = 0; a < os.size(); ++a)
      off += (int64_t(a) == d ? c[a] - start[k] : c[a]) * x.stride(int64_t(a));
    std::memcpy(op + size_t(i) * es, static_cast<const uint8_t*>(x.raw_data()) + off * int64_t(es), es);
  }
}

// ---- fast path: contiguous inputs viewed as [O, n_k * inner] byte rows ----
void concat_fast(const std::vector<Tensor>& xs, int64_t d, const Tensor& out) {
  size_t es = dtype_size(out.dtype());
  int64_t O = 1, inner = 1;
  for (int64_t a = 0; a < d; ++a) O *= out.size(a);
  for (int64_t a = d + 1; a < out.dim(); ++a) inner *= out.size(a);
  std::vector<Tensor> keep;  // contiguous copies stay alive until the kernel ran
  std::vector<const uint8_t*> srcs;
  std::vector<int64_t> widths;
  for (const auto& x : xs) {
    keep.push_back(contig(x));
    srcs.push_back(static_cast<const uint8_t*>(keep.back().raw_data()));
    widths.push_back(x.size(d) * inner * int64_t(es));
  }
  cpu::concat_rows(srcs, widths, static_cast<uint8_t*>(out.raw_data()), O);
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  int64_t d = 0;
  Shape os = concat_shape(xs, dim, "concat", d);
  Tensor out = Tensor::empty(os, xs[0].dtype());
  if (reference_mode()) concat_ref(xs, d, out);
  else concat_fast(xs, d, out);
  std::vector<int64_t> sizes;
  for (const auto& x : xs) sizes.push_back(x.size(d));
  // Backward: input k receives its slab of g (a view; the engine copies before owning it).
  return record(out, "concat", xs, {}, [d, sizes](const Tensor& g, const std::vector<Tensor>&) {
    std::vector<Tensor> gs;
    int64_t off = 0;
    for (int64_t n : sizes) {
      gs.push_back(g.narrow(d, off, n));
      off += n;
    }
    return gs;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  LMLAB_CHECK(!xs.empty(), ValueError, "[stack] expected a non-empty list of tensors");
  for (size_t k = 0; k < xs.size(); ++k) {
    LMLAB_CHECK(xs[k].defined(), ValueError, "[stack] tensor ", k, " is undefined");
    LMLAB_CHECK(xs[k].dtype() == xs[0].dtype(), DTypeError, "[stack] tensor ", k, " has dtype ",
                dtype_name(xs[k].dtype()), ", expected ", dtype_name(xs[0].dtype()), " (tensor 0)");
    LMLAB_CHECK(xs[k].shape() == xs[0].shape(), ShapeError, "[stack] tensor ", k, " has shape ",
                shape_str(xs[k].shape()), ", expected ", shape_str(xs[0].shape()), " (tensor 0)");
  }
  int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  // Composite: concat of unsqueezed views, so kernels and backward are concat's.
  std::vector<Tensor> us;
  for (const auto& x : xs) us.push_back(x.unsqueeze(d));
  return concat(us, d);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined(x, "split", "x");
  LMLAB_CHECK(x.dim() > 0, ShapeError, "[split] cannot split a zero-dimensional tensor");
  int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    LMLAB_CHECK(s >= 0, ValueError, "[split] split sizes must be non-negative, got ", shape_str(sizes));
    total += s;
  }
  LMLAB_CHECK(total == x.size(d), ShapeError, "[split] split sizes ", shape_str(sizes), " sum to ", total,
              ", expected the size of dim ", d, " of ", shape_str(x.shape()), " (", x.size(d), ")");
  std::vector<Tensor> out;
  int64_t off = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, off, s));
    off += s;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  check_defined(x, "split", "x");
  LMLAB_CHECK(x.dim() > 0, ShapeError, "[split] cannot split a zero-dimensional tensor");
  int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t n = x.size(d);
  LMLAB_CHECK(split_size > 0 || (split_size == 0 && n == 0), ValueError, "[split] split_size must be positive",
              " (0 only for an empty dim), got ", split_size, " for dim ", d, " of size ", n);
  // torch: ceil(n / split_size) pieces, the last one smaller; an empty dim gives one empty piece.
  int64_t pieces = split_size == 0 ? 1 : std::max<int64_t>(1, (n + split_size - 1) / split_size);
  std::vector<int64_t> sizes;
  for (int64_t p = 0; p < pieces; ++p) sizes.push_back(std::min(split_size, n - p * split_size));
  return split(x, sizes, d);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk", "x");
  LMLAB_CHECK(chunks > 0, ValueError, "[chunk] number of chunks must be positive, got ", chunks);
  LMLAB_CHECK(x.dim() > 0, ShapeError, "[chunk] cannot chunk a zero-dimensional tensor");
  int64_t d = wrap_dim(dim, x.dim(), "chunk");
  int64_t n = x.size(d);
  int64_t size = (n + chunks - 1) / chunks;
  // torch.chunk: pieces of ceil(n / chunks), so fewer than `chunks` may come back; an empty dim
  // still gives `chunks` empty pieces.
  if (n == 0) return split(x, std::vector<int64_t>(size_t(chunks), 0), d);
  return split(x, size, d);
}

}  // namespace lmlab
