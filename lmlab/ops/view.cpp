// Differentiable views and copies (Tensor member functions declared in core/tensor.h).
// Views share storage; their backward routes the gradient back to the viewed region.
#include <algorithm>
#include <numeric>

#include "lmlab/ops/dispatch.h"
#include "lmlab/ops/reduce.h"
#include "lmlab/ops/elementwise.h"

namespace lmlab {

using namespace detail;

namespace {

// Infers a single -1 in `shape` from numel.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape s = shape;
  int64_t known = 1, neg = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      LMLAB_CHECK(neg < 0, ShapeError, "[", op, "] more than one -1 in ", shape_str(shape));
      neg = int64_t(i);
    } else {
      LMLAB_CHECK(s[i] >= 0, ShapeError, "[", op, "] invalid size in ", shape_str(shape));
      known *= s[i];
    }
  }
  if (neg >= 0) {
    LMLAB_CHECK(known > 0 && numel % known == 0, ShapeError, "[", op, "] cannot infer -1 in ", shape_str(shape),
                " for ", numel, " elements");
    s[size_t(neg)] = numel / known;
  }
  LMLAB_CHECK(numel_of(s) == numel, ShapeError, "[", op, "] shape ", shape_str(shape), " is invalid for ", numel,
              " elements");
  return s;
}

// Strides for viewing (shape, strides) as `target` without copying, or empty when impossible
// (PyTorch's computeStride: split the old shape into contiguous chunks).
bool view_strides(const Shape& old, const Strides& ost, const Shape& target, Strides& out) {
  out.assign(target.size(), 0);
  if (numel_of(old) == 0) {
    out = contiguous_strides(target);
    return true;
  }
  int64_t view_d = int64_t(target.size()) - 1;
  int64_t tensor_numel = 1, view_numel = 1;
  int64_t chunk_base_stride = ost.empty() ? 1 : ost.back();
  tensor_numel = 1;
  view_numel = 1;
  for (int64_t d = int64_t(old.size()) - 1; d >= 0; --d) {
    tensor_numel *= old[size_t(d)];
    bool end = d == 0 || (old[size_t(d - 1)] != 1 && ost[size_t(d - 1)] != tensor_numel * chunk_base_stride);
    if (end) {
      while (view_d >= 0 && (view_numel < tensor_numel || target[size_t(view_d)] == 1)) {
        out[size_t(view_d)] = view_numel * chunk_base_stride;
        view_numel *= target[size_t(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = ost[size_t(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor raw_view(const Tensor& t, const Shape& shape) {
  Strides st;
  if (t.is_contiguous()) return t.as_strided(shape, contiguous_strides(shape), t.offset());
  LMLAB_CHECK(view_strides(t.shape(), t.strides(), shape, st), ShapeError, "[view] cannot view tensor of shape ",
              shape_str(t.shape()), " strides ", shape_str(t.strides()), " as ", shape_str(shape),
              "; use reshape() (copies)");
  return t.as_strided(shape, st, t.offset());
}

}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor c = contig(*this);
  return record(c, "contiguous", {*this}, {}, [](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g};
  });
}

Tensor Tensor::clone() const {
  Tensor c = Tensor::empty(shape(), dtype());
  copy_into(c, *this);
  return record(c, "clone", {*this}, {}, [](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g};
  });
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor c = Tensor::empty(shape(), dt);
  copy_into(c, *this);
  if (!is_floating(dt)) return c;
  DType src = dtype();
  return record(c, "cast", {*this}, {}, [src](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g.to(src)};
  });
}

Tensor Tensor::view(const Shape& shape_in) const {
  Shape s = infer_shape(shape_in, numel(), "view");
  Tensor v = raw_view(*this, s);
  Shape orig = shape();
  return record(v, "reshape", {*this}, {}, [orig](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g.reshape(orig)};
  });
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape s = infer_shape(shape_in, numel(), "reshape");
  Strides st;
  Tensor v;
  if (is_contiguous()) v = as_strided(s, contiguous_strides(s), offset());
  else if (view_strides(shape(), strides(), s, st)) v = as_strided(s, st, offset());
  else v = raw_view(contig(*this), s);
  Shape orig = shape();
  return record(v, "reshape", {*this}, {}, [orig](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g.reshape(orig)};
  });
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  int64_t nd = dim();
  LMLAB_CHECK(int64_t(dims.size()) == nd, ShapeError, "[permute] expected ", nd, " dims, got ", dims.size());
  std::vector<int64_t> p(dims.size()), inv(dims.size());
  std::vector<bool> seen(dims.size(), false);
  Shape s(dims.size());
  Strides st(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    p[i] = wrap_dim(dims[i], nd, "permute");
    LMLAB_CHECK(!seen[size_t(p[i])], IndexError, "[permute] dim ", dims[i], " repeated");
    seen[size_t(p[i])] = true;
    inv[size_t(p[i])] = int64_t(i);
    s[i] = shape()[size_t(p[i])];
    st[i] = strides()[size_t(p[i])];
  }
  Tensor v = as_strided(s, st, offset());
  return record(v, "permute", {*this}, {}, [inv](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{g.permute(inv)};
  });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  int64_t nd = dim();
  int64_t a = wrap_dim(d0, nd, "transpose"), b = wrap_dim(d1, nd, "transpose");
  std::vector<int64_t> p(static_cast<size_t>(nd));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[size_t(a)], p[size_t(b)]);
  return permute(p);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  int64_t dd = wrap_dim(d, dim(), "slice");
  LMLAB_CHECK(step > 0, ValueError, "[slice] step must be positive, got ", step);
  int64_t n = shape()[size_t(dd)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape();
  Strides st = strides();
  s[size_t(dd)] = (end - start + step - 1) / step;
  st[size_t(dd)] *= step;
  Tensor v = as_strided(s, st, offset() + start * strides()[size_t(dd)]);
  Shape orig = shape();
  DType dt = dtype();
  return record(v, "slice", {*this}, {}, [=](const Tensor& g, const std::vector<Tensor>&) {
    Tensor z = Tensor::zeros(orig, dt);
    copy_into(z.slice(dd, start, end, step), g);
    return std::vector<Tensor>{z};
  });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  int64_t dd = wrap_dim(d, dim(), "narrow");
  int64_t n = shape()[size_t(dd)];
  LMLAB_CHECK(start >= 0 && length >= 0 && start + length <= n, IndexError, "[narrow] range [", start, ", ",
              start + length, ") outside dim ", dd, " of size ", n);
  return slice(dd, start, start + length, 1);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  int64_t dd = wrap_dim(d, dim(), "select");
  int64_t n = shape()[size_t(dd)];
  LMLAB_CHECK(index >= -n && index < n, IndexError, "[select] index ", index, " out of range for dim ", dd,
              " of size ", n);
  if (index < 0) index += n;
  Shape s = shape();
  Strides st = strides();
  s.erase(s.begin() + dd);
  st.erase(st.begin() + dd);
  Tensor v = as_strided(s, st, offset() + index * strides()[size_t(dd)]);
  Shape orig = shape();
  DType dt = dtype();
  return record(v, "select", {*this}, {}, [=](const Tensor& g, const std::vector<Tensor>&) {
    Tensor z = Tensor::zeros(orig, dt);
    Shape gs = orig;
    gs[size_t(dd)] = 1;
    copy_into(z.slice(dd, index, index + 1), g.reshape(gs));
    return std::vector<Tensor>{z};
  });
}

Tensor Tensor::expand(const Shape& target_in) const {
  Shape target = target_in;
  LMLAB_CHECK(target.size() >= shape().size(), ShapeError, "[expand] cannot expand ", shape_str(shape()), " to ",
              shape_str(target_in));
  size_t off = target.size() - shape().size();
  for (size_t i = 0; i < shape().size(); ++i) {
    if (target[i + off] == -1) target[i + off] = shape()[i];
    LMLAB_CHECK(shape()[i] == target[i + off] || shape()[i] == 1, ShapeError, "[expand] cannot expand ",
                shape_str(shape()), " to ", shape_str(target_in));
  }
  if (target == shape()) return *this;
  Tensor v = as_strided(target, broadcast_strides(shape(), strides(), target), offset());
  Shape orig = shape();
  return record(v, "expand", {*this}, {}, [orig](const Tensor& g, const std::vector<Tensor>&) {
    return std::vector<Tensor>{sum_to(g, orig)};
  });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t dd = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + dd, 1);
  return view(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  int64_t dd = wrap_dim(d, dim(), "squeeze");
  if (shape()[size_t(dd)] != 1) return *this;
  Shape s = shape();
  s.erase(s.begin() + dd);
  return view(s);
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  int64_t a = wrap_dim(start, dim(), "flatten"), b = wrap_dim(end, dim(), "flatten");
  Shape s;
  for (int64_t i = 0; i < a; ++i) s.push_back(size(i));
  int64_t m = 1;
  for (int64_t i = a; i <= b; ++i) m *= size(i);
  s.push_back(m);
  for (int64_t i = b + 1; i < dim(); ++i) s.push_back(size(i));
  return reshape(s);
}

}  // namespace lmlab
