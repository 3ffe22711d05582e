// Sorting ops: sort, argsort, topk (torch.sort(stable=True), torch.argsort, torch.topk). All three
// are "the first k entries of the stable sort along dim", NaN largest; topk(largest) is the prefix
// of the descending sort. Fast kernel: ops/cpu/sort.cpp. Backward of the values: g scattered back
// to the positions the indices name (vjp with scatter_add).
#include "lmlab/ops/sort.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "lmlab/ops/cpu/sort_kernels.h"
#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/index.h"

namespace lmlab {

using namespace detail;

namespace {

struct Sorted {
  Tensor values, indices;  // [x shape with dim d = k], contiguous
};

// ---- reference: stable sort of each row by logical index, with the spec's comparison ----
template <class T>
bool before(T a, T b, bool descending) {
  if (descending) std::swap(a, b);
  return (!std::isnan(a) && std::isnan(b)) || a < b;  // NaN is larger than every number
}

void sort_ref(const Tensor& x, int64_t d, int64_t k, bool descending, const Sorted& s) {
  int64_t n = x.size(d);
  Shape rows_shape = x.shape();
  rows_shape[size_t(d)] = 1;
  Strides ost = s.values.strides();
  LMLAB_DISPATCH_FLOAT(x.dtype(), "sort", [&] {
    const scalar_t* xp = static_cast<const scalar_t*>(x.raw_data());
    scalar_t* vp = s.values.data<scalar_t>();
    int64_t* ip = s.indices.data<int64_t>();
    std::vector<scalar_t> row(static_cast<size_t>(n));
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t r = 0; r < numel_of(rows_shape); ++r) {
      int64_t xbase = offset_of(r, rows_shape, x.strides()), obase = offset_of(r, rows_shape, ost);
      for (int64_t i = 0; i < n; ++i) row[size_t(i)] = xp[xbase + i * x.stride(d)];
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int64_t a, int64_t b) { return before(row[size_t(a)], row[size_t(b)], descending); });
      for (int64_t j = 0; j < k; ++j) {
        vp[obase + j * ost[size_t(d)]] = row[size_t(idx[size_t(j)])];
        ip[obase + j * ost[size_t(d)]] = idx[size_t(j)];
      }
    }
  });
}

// ---- fast: move d last, sort contiguous rows, move it back ----
void sort_fast(const Tensor& x, int64_t d, int64_t k, bool descending, Sorted& s) {
  int64_t nd = x.dim(), n = x.size(d);
  std::vector<int64_t> perm;
  for (int64_t a = 0; a < nd; ++a)
    if (a != d) perm.push_back(a);
  perm.push_back(d);
  Shape ps, pos;
  Strides pst;
  for (int64_t a : perm) {
    ps.push_back(x.size(a));
    pst.push_back(x.stride(a));
    pos.push_back(a == d ? k : x.size(a));
  }
  Tensor xr = contig(x.as_strided(ps, pst, x.offset()));  // [R, n]
  int64_t R = k ? numel_of(pos) / k : 0;
  bool last = d == nd - 1;
  Tensor v = last ? s.values : Tensor::empty(pos, x.dtype());
  Tensor i = last ? s.indices : Tensor::empty(pos, DType::I64);
  if (R > 0) cpu::sort_rows(x.dtype(), xr.raw_data(), R, n, k, descending, v.raw_data(), i.data<int64_t>());
  if (!last) {
    // v/i are [others..., k]; view them with d back in place and copy into the outputs.
    std::vector<int64_t> inv(static_cast<size_t>(nd));
    for (int64_t a = 0; a < nd; ++a) inv[size_t(perm[size_t(a)])] = a;
    Shape bs;
    Strides vst, ist;
    for (int64_t a = 0; a < nd; ++a) {
      bs.push_back(pos[size_t(inv[size_t(a)])]);
      vst.push_back(v.stride(inv[size_t(a)]));
      ist.push_back(i.stride(inv[size_t(a)]));
    }
    copy_into(s.values, v.as_strided(bs, vst, 0));
    copy_into(s.indices, i.as_strided(bs, ist, 0));
  }
}

// Values and indices without autograd; x has rank >= 1, 0 <= k <= x.size(d).
Sorted sort_raw(const Tensor& x, int64_t d, int64_t k, bool descending) {
  Shape os = x.shape();
  os[size_t(d)] = k;
  Sorted s{Tensor::empty(os, x.dtype()), Tensor::empty(os, DType::I64)};
  if (reference_mode()) sort_ref(x, d, k, descending, s);
  else sort_fast(x, d, k, descending, s);
  return s;
}

// Attaches the values' backward: g [.., k, ..] lands at the positions `indices` name in x.
Tensor record_values(const Tensor& x, int64_t d, const Sorted& s, const char* op) {
  return record(s.values, op, {x}, {s.indices}, [d, xs = x.shape()](const Tensor& g, const std::vector<Tensor>& sv) {
    return std::vector<Tensor>{scatter_add(Tensor::zeros(xs, g.dtype()), d, sv[0], g)};
  });
}

}  // namespace

std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  check_float(x, "sort", "x");
  int64_t d = wrap_dim(dim, x.dim(), "sort");
  if (x.dim() == 0) {
    auto [v, i] = sort(x.reshape({1}), 0, descending);
    return {v.reshape({}), i.reshape({})};
  }
  Sorted s = sort_raw(x, d, x.size(d), descending);
  return {record_values(x, d, s, "sort"), s.indices};
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  check_float(x, "argsort", "x");
  int64_t d = wrap_dim(dim, x.dim(), "argsort");
  if (x.dim() == 0) return Tensor::zeros({}, DType::I64);
  return sort_raw(x, d, x.size(d), descending).indices;
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  check_float(x, "topk", "x");
  int64_t d = wrap_dim(dim, x.dim(), "topk");
  int64_t n = x.dim() == 0 ? 1 : x.size(d);
  LMLAB_CHECK(k >= 0 && k <= n, ValueError, "[topk] k = ", k, " out of range for dim ", d, " of size ", n,
              " (expected 0 <= k <= ", n, ")");
  if (x.dim() == 0) {
    auto [v, i] = topk(x.reshape({1}), k, 0, largest);
    if (k == 0) return {v, i};  // nothing to squeeze back into a scalar
    return {v.reshape({}), i.reshape({})};
  }
  Sorted s = sort_raw(x, d, k, largest);
  return {record_values(x, d, s, "topk"), s.indices};
}

}  // namespace lmlab
