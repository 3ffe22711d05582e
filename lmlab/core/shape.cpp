// Shape helpers.
#include "lmlab/core/shape.h"

#include "lmlab/core/error.h"

namespace lmlab {

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  LMLAB_CHECK(d >= lo && d <= hi, IndexError, "[", op, "] dim out of range: expected in [", lo, ", ", hi,
              "], got ", d);
  if (ndim == 0) return 0;
  return d < 0 ? d + ndim : d;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    LMLAB_CHECK(da == db || da == 1 || db == 1, ShapeError, "[", op, "] shapes not broadcastable: ",
                shape_str(a), " and ", shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& target) {
  size_t n = target.size(), off = n - shape.size();
  Strides out(n, 0);
  for (size_t i = 0; i < shape.size(); ++i) out[i + off] = shape[i] == 1 ? 0 : strides[i];
  return out;
}

}  // namespace lmlab
