// Embedding lookup: validation, reference kernels, autograd wiring. Fast kernels:
// ops/cpu/embedding.cpp. Reference: torch.nn.functional.embedding (no padding_idx / max_norm).
#include "lmlab/ops/embedding.h"

#include "lmlab/ops/cpu/embedding_kernels.h"
#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

constexpr const char* kOp = "embedding";

// Reference forward: out[k, c] = w[ids[k], c], reading w through its strides.
template <class T>
void embedding_ref(const Tensor& w, const int64_t* ids, int64_t n, T* out) {
  const T* wp = static_cast<const T*>(w.raw_data());
  const int64_t C = w.size(1), s0 = w.stride(0), s1 = w.stride(1);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t c = 0; c < C; ++c) out[k * C + c] = wp[ids[k] * s0 + c * s1];
}

// Reference backward: positions in order, accumulated in a double [V, C] buffer.
template <class T>
void embedding_backward_ref(const Tensor& g, const int64_t* ids, int64_t n, int64_t V, int64_t C, T* dw) {
  const T* gp = static_cast<const T*>(g.raw_data());
  std::vector<double> acc(size_t(V * C), 0.0);
  for (int64_t k = 0; k < n; ++k)
    for (int64_t c = 0; c < C; ++c)
      acc[size_t(ids[k] * C + c)] += double(gp[offset_of(k * C + c, g.shape(), g.strides())]);
  for (int64_t i = 0; i < V * C; ++i) dw[i] = T(acc[size_t(i)]);
}

// Ids as contiguous i64 [n], each checked against [0, V) before any kernel runs.
Tensor checked_ids(const Tensor& ids, int64_t V) {
  Tensor ic = contig(ids);
  const int64_t n = ic.numel();
  for (int64_t k = 0; k < n; ++k) {
    int64_t v = index_at(ic, k);
    LMLAB_CHECK(v >= 0 && v < V, IndexError, "[embedding] id ", v, " out of range [0, ", V, ") at position ", k);
  }
  if (ic.dtype() == DType::I64) return ic.reshape({n});
  Tensor i64 = Tensor::empty({n}, DType::I64);
  for (int64_t k = 0; k < n; ++k) i64.data<int64_t>()[k] = index_at(ic, k);
  return i64;
}

Tensor embedding_backward(const Tensor& g_in, const Tensor& ids, DType dt, int64_t V, int64_t C) {
  Tensor g = g_in.dtype() == dt ? g_in : g_in.to(dt);
  const int64_t n = ids.numel();
  Tensor dw = Tensor::empty({V, C}, dt);
  LMLAB_DISPATCH_FLOAT(dt, kOp, [&] {
    if (reference_mode()) {
      embedding_backward_ref<scalar_t>(g, ids.data<int64_t>(), n, V, C, dw.data<scalar_t>());
    } else {
      Tensor gc = contig(g);
      cpu::embedding_backward<scalar_t>(gc.data<scalar_t>(), ids.data<int64_t>(), n, V, C, dw.data<scalar_t>());
    }
  });
  return dw;
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_float(weight, kOp, "weight");
  check_index_dtype(ids, kOp, "ids");
  LMLAB_CHECK(weight.dim() == 2, ShapeError, "[embedding] weight must be [V, C]: got ", shape_str(weight.shape()));
  const int64_t V = weight.size(0), C = weight.size(1);
  Tensor ids64 = checked_ids(ids, V);
  const int64_t n = ids64.numel();

  Shape out_shape = ids.shape();  // [..., C]
  out_shape.push_back(C);
  Tensor out = Tensor::empty(out_shape, weight.dtype());
  LMLAB_DISPATCH_FLOAT(weight.dtype(), kOp, [&] {
    if (reference_mode()) {
      embedding_ref<scalar_t>(weight, ids64.data<int64_t>(), n, out.data<scalar_t>());
    } else {
      // Rows with unit column stride (e.g. a row slice of a bigger table) are read in place.
      Tensor wc = weight.stride(1) == 1 ? weight : contig(weight.detach());
      cpu::embedding_forward<scalar_t>(wc.data<scalar_t>(), wc.stride(0), ids64.data<int64_t>(), n, C,
                                       out.data<scalar_t>());
    }
  });
  return record(out, kOp, {weight, ids}, {ids64},
                [dt = weight.dtype(), V, C](const Tensor& g, const std::vector<Tensor>& s) {
                  return std::vector<Tensor>{embedding_backward(g, s[0], dt, V, C), Tensor()};
                });
}

}  // namespace lmlab
