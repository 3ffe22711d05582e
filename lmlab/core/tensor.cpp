// Core Tensor methods: factories, metadata, element access, raw views, autograd state.
#include "lmlab/core/tensor.h"

#include <atomic>
#include <cmath>
#include <sstream>

#include "lmlab/core/node.h"
#include "lmlab/core/parallel.h"
#include "lmlab/core/rng.h"

namespace lmlab {

namespace {
const TensorImpl& checked(const std::shared_ptr<TensorImpl>& p) {
  LMLAB_CHECK(p != nullptr, Error, "[tensor] operation on an undefined tensor");
  return *p;
}

template <class T>
void fill_typed(void* p, int64_t n, double v) {
  T* d = static_cast<T*>(p);
  T tv = T(v);
  parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) d[i] = tv;
  });
}

void fill_raw(void* p, DType dt, int64_t n, double v) {
  switch (dt) {
    case DType::F32: fill_typed<float>(p, n, v); break;
    case DType::F64: fill_typed<double>(p, n, v); break;
    case DType::I32: fill_typed<int32_t>(p, n, v); break;
    case DType::I64: fill_typed<int64_t>(p, n, v); break;
    case DType::U8: fill_typed<uint8_t>(p, n, v); break;
    case DType::BF16: {
      uint16_t h = f32_to_bf16(float(v));
      auto* d = static_cast<uint16_t*>(p);
      for (int64_t i = 0; i < n; ++i) d[i] = h;
      break;
    }
    case DType::F16: {
      uint16_t h = f32_to_f16(float(v));
      auto* d = static_cast<uint16_t*>(p);
      for (int64_t i = 0; i < n; ++i) d[i] = h;
      break;
    }
  }
}

// Reads element at byte pointer p as double.
double load_as_double(const void* p, DType dt) {
  switch (dt) {
    case DType::F32: return *static_cast<const float*>(p);
    case DType::F64: return *static_cast<const double*>(p);
    case DType::BF16: return bf16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::F16: return f16_to_f32(*static_cast<const uint16_t*>(p));
    case DType::I32: return *static_cast<const int32_t*>(p);
    case DType::I64: return double(*static_cast<const int64_t*>(p));
    case DType::U8: return *static_cast<const uint8_t*>(p);
  }
  return 0;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (auto d : shape)
    LMLAB_CHECK(d >= 0, ShapeError, "[empty] negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(numel_of(shape)) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }
Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  fill_raw(t.raw_data(), dtype, t.numel(), value);
  return t;
}
Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, DType::F64);
  double* d = t.data<double>();
  for (int64_t i = 0; i < n; ++i) d[i] = double(i);
  if (dtype == DType::F64) return t;
  Tensor o = empty({n}, dtype);
  copy_into(o, t);
  return o;
}

namespace {
// Fills a new f32/f64 tensor with draw(key, counter) at counter base + i: the values depend on the
// generator state only, not on how parallel_for splits the range.
template <class Draw>
Tensor random_fill(const Shape& shape, Generator& gen, DType dtype, const char* op, Draw draw) {
  LMLAB_CHECK(dtype == DType::F32 || dtype == DType::F64, DTypeError, "[", op, "] unsupported dtype ",
              dtype_name(dtype), ": expected f32 or f64");
  Tensor t = Tensor::empty(shape, dtype);
  int64_t n = t.numel();
  uint64_t base = gen.reserve(uint64_t(n)), key = gen.seed();
  auto fill = [&](auto* d) {
    parallel_for(0, n, 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) d[i] = static_cast<std::remove_pointer_t<decltype(d)>>(draw(key, base + uint64_t(i)));
    });
  };
  if (dtype == DType::F32) fill(t.data<float>());
  else fill(t.data<double>());
  return t;
}
}  // namespace

Tensor Tensor::rand(const Shape& shape, Generator& gen, DType dtype) {
  if (dtype == DType::F32)
    return random_fill(shape, gen, dtype, "rand", [](uint64_t k, uint64_t c) { return philox_uniform_f(k, c); });
  return random_fill(shape, gen, dtype, "rand", [](uint64_t k, uint64_t c) { return philox_uniform(k, c); });
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype) {
  return random_fill(shape, gen, dtype, "randn", [](uint64_t k, uint64_t c) { return philox_normal(k, c); });
}

template <class T>
Tensor Tensor::from_vector(const std::vector<T>& v, const Shape& shape) {
  LMLAB_CHECK(int64_t(v.size()) == numel_of(shape), ShapeError, "[from_vector] ", v.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>::value);
  std::copy(v.begin(), v.end(), t.data<T>());
  return t;
}
template Tensor Tensor::from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&);

Tensor Tensor::from_storage(std::shared_ptr<Storage> st, const Shape& shape, const Strides& strides,
                            int64_t offset, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(st);
  impl->dtype = dtype;
  Tensor base(impl);
  impl->shape = {};
  impl->strides = {};
  return base.as_strided(shape, strides, offset);
}

const Shape& Tensor::shape() const { return checked(impl_).shape; }
const Strides& Tensor::strides() const { return checked(impl_).strides; }
int64_t Tensor::offset() const { return checked(impl_).offset; }
int64_t Tensor::dim() const { return int64_t(shape().size()); }
int64_t Tensor::size(int64_t d) const { return shape()[size_t(wrap_dim(d, dim(), "size"))]; }
int64_t Tensor::stride(int64_t d) const { return strides()[size_t(wrap_dim(d, dim(), "stride"))]; }
int64_t Tensor::numel() const { return numel_of(shape()); }
DType Tensor::dtype() const { return checked(impl_).dtype; }
Device Tensor::device() const { return checked(impl_).storage->device(); }
const std::shared_ptr<Storage>& Tensor::storage() const { return checked(impl_).storage; }

bool Tensor::is_contiguous() const {
  const auto& s = shape();
  const auto& st = strides();
  int64_t expect = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    if (s[i] == 1) continue;
    if (st[i] != expect) return false;
    expect *= s[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const auto& im = checked(impl_);
  return static_cast<char*>(im.storage->data()) + im.offset * int64_t(dtype_size(im.dtype));
}

template <class T>
T* Tensor::data() const {
  LMLAB_CHECK(dtype() == dtype_of<T>::value, DTypeError, "[data] tensor has dtype ", dtype_name(dtype()),
              ", accessed as ", dtype_name(dtype_of<T>::value));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;

double Tensor::item() const {
  LMLAB_CHECK(numel() == 1, ShapeError, "[item] expected a tensor with one element, got shape ", shape_str(shape()));
  return at(std::vector<int64_t>(size_t(dim()), 0));
}

double Tensor::at(const std::vector<int64_t>& idx) const {
  LMLAB_CHECK(int64_t(idx.size()) == dim(), IndexError, "[at] expected ", dim(), " indices, got ", idx.size());
  int64_t off = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    int64_t k = idx[i] < 0 ? idx[i] + shape()[i] : idx[i];
    LMLAB_CHECK(k >= 0 && k < shape()[i], IndexError, "[at] index ", idx[i], " out of range for dim ", i,
                " of size ", shape()[i]);
    off += k * strides()[i];
  }
  const char* p = static_cast<const char*>(raw_data()) + off * int64_t(dtype_size(dtype()));
  return load_as_double(p, dtype());
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = Tensor::empty(shape(), dtype_of<T>::value);
  copy_into(c, *this);
  const T* d = c.data<T>();
  return std::vector<T>(d, d + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

std::string Tensor::to_string(int64_t max_elems) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype()) << ", values=[";
  auto v = to_vector<double>();
  for (int64_t i = 0; i < int64_t(v.size()) && i < max_elems; ++i) os << (i ? ", " : "") << v[size_t(i)];
  if (int64_t(v.size()) > max_elems) os << ", ...";
  os << "])";
  return os.str();
}

Tensor Tensor::as_strided(const Shape& shape, const Strides& strides, int64_t offset) const {
  const auto& im = checked(impl_);
  LMLAB_CHECK(shape.size() == strides.size(), ShapeError, "[as_strided] shape ", shape_str(shape),
              " and strides ", shape_str(strides), " differ in rank");
  int64_t lo = offset, hi = offset;
  bool empty_view = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    LMLAB_CHECK(shape[i] >= 0, ShapeError, "[as_strided] negative size in ", shape_str(shape));
    if (shape[i] == 0) empty_view = true;
    int64_t ext = (shape[i] - 1) * strides[i];
    if (ext < 0) lo += ext; else hi += ext;
  }
  int64_t cap = int64_t(im.storage->nbytes() / dtype_size(im.dtype));
  LMLAB_CHECK(empty_view || (lo >= 0 && hi < cap), IndexError, "[as_strided] view of shape ", shape_str(shape),
              " at offset ", offset, " reaches elements [", lo, ", ", hi, "] outside storage of ", cap, " elements");
  auto v = std::make_shared<TensorImpl>();
  v->storage = im.storage;
  v->shape = shape;
  v->strides = strides;
  v->offset = offset;
  v->dtype = im.dtype;
  return Tensor(v);
}

bool Tensor::requires_grad() const { return checked(impl_).requires_grad; }
Tensor& Tensor::set_requires_grad(bool r) {
  checked(impl_);
  LMLAB_CHECK(!r || is_floating(impl_->dtype), DTypeError, "[requires_grad] only floating tensors can require grad, got ",
              dtype_name(impl_->dtype));
  LMLAB_CHECK(impl_->grad_fn == nullptr || r, AutogradError,
              "[requires_grad] cannot turn off requires_grad on a non-leaf; use detach()");
  impl_->requires_grad = r;
  return *this;
}
bool Tensor::is_leaf() const { return checked(impl_).grad_fn == nullptr; }
const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked(impl_).grad_fn; }
Tensor Tensor::grad() const { return checked(impl_).grad; }
void Tensor::set_grad(const Tensor& g) const { checked(impl_); impl_->grad = g; }
void Tensor::zero_grad() const { checked(impl_); impl_->grad = Tensor(); }
void Tensor::register_hook(Hook h) const {
  checked(impl_);
  LMLAB_CHECK(impl_->requires_grad, AutogradError, "[register_hook] tensor does not require grad");
  if (impl_->grad_fn) impl_->grad_fn->out_hooks.push_back(std::move(h));
  else impl_->hooks.push_back(std::move(h));
}
void Tensor::retain_grad() const {
  checked(impl_);
  LMLAB_CHECK(impl_->requires_grad, AutogradError, "[retain_grad] tensor does not require grad");
  if (impl_->grad_fn) impl_->grad_fn->retain = impl_;
}
Tensor Tensor::detach() const {
  const auto& im = checked(impl_);
  auto v = std::make_shared<TensorImpl>();
  v->storage = im.storage;
  v->shape = im.shape;
  v->strides = im.strides;
  v->offset = im.offset;
  v->dtype = im.dtype;
  return Tensor(v);
}

// ---- strided copy with dtype conversion ----
namespace {
struct BF16 { uint16_t v; };
struct F16 { uint16_t v; };

template <class T> inline double to_d(T x) { return double(x); }
template <> inline double to_d<BF16>(BF16 x) { return bf16_to_f32(x.v); }
template <> inline double to_d<F16>(F16 x) { return f16_to_f32(x.v); }
template <class T> inline T from_d(double x) { return T(x); }
template <> inline BF16 from_d<BF16>(double x) { return BF16{f32_to_bf16(float(x))}; }
template <> inline F16 from_d<F16>(double x) { return F16{f32_to_f16(float(x))}; }
template <> inline uint8_t from_d<uint8_t>(double x) { return uint8_t(int64_t(x)); }

template <class D, class S>
inline D conv(S s) {
  if constexpr (std::is_same_v<D, S>) return s;
  else if constexpr (std::is_same_v<D, float> && std::is_same_v<S, BF16>) return bf16_to_f32(s.v);
  else if constexpr (std::is_same_v<D, BF16> && std::is_same_v<S, float>) return BF16{f32_to_bf16(s)};
  else if constexpr (std::is_integral_v<D> && std::is_integral_v<S>) return D(s);
  else return from_d<D>(to_d<S>(s));
}

template <class D, class S>
void copy_typed(D* dst, const Strides& dst_st, const S* src, const Strides& src_st, const Shape& shape) {
  int64_t nd = int64_t(shape.size());
  int64_t n = numel_of(shape);
  if (n == 0) return;
  if (nd == 0) { dst[0] = conv<D>(src[0]); return; }
  int64_t inner = shape[size_t(nd - 1)], ds = dst_st[size_t(nd - 1)], ss = src_st[size_t(nd - 1)];
  int64_t rows = n / inner;
  parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t rem = r, doff = 0, soff = 0;
      for (int64_t d = nd - 2; d >= 0; --d) {
        int64_t k = rem % shape[size_t(d)];
        rem /= shape[size_t(d)];
        doff += k * dst_st[size_t(d)];
        soff += k * src_st[size_t(d)];
      }
      D* dp = dst + doff;
      const S* sp = src + soff;
      if (ds == 1 && ss == 1) {
        for (int64_t i = 0; i < inner; ++i) dp[i] = conv<D>(sp[i]);
      } else {
        for (int64_t i = 0; i < inner; ++i) dp[i * ds] = conv<D>(sp[i * ss]);
      }
    }
  });
}

template <class D>
void copy_from_any(D* dst, const Strides& dst_st, const Tensor& src) {
  const Strides& ss = src.strides();
  const Shape& sh = src.shape();
  const void* p = src.raw_data();
  switch (src.dtype()) {
    case DType::F32: copy_typed(dst, dst_st, static_cast<const float*>(p), ss, sh); break;
    case DType::F64: copy_typed(dst, dst_st, static_cast<const double*>(p), ss, sh); break;
    case DType::I32: copy_typed(dst, dst_st, static_cast<const int32_t*>(p), ss, sh); break;
    case DType::I64: copy_typed(dst, dst_st, static_cast<const int64_t*>(p), ss, sh); break;
    case DType::U8: copy_typed(dst, dst_st, static_cast<const uint8_t*>(p), ss, sh); break;
    case DType::BF16: copy_typed(dst, dst_st, static_cast<const BF16*>(p), ss, sh); break;
    case DType::F16: copy_typed(dst, dst_st, static_cast<const F16*>(p), ss, sh); break;
  }
}
}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  LMLAB_CHECK(dst.shape() == src.shape(), ShapeError, "[copy] shape mismatch: destination ", shape_str(dst.shape()),
              ", source ", shape_str(src.shape()));
  const Strides& ds = dst.strides();
  void* p = dst.raw_data();
  switch (dst.dtype()) {
    case DType::F32: copy_from_any(static_cast<float*>(p), ds, src); break;
    case DType::F64: copy_from_any(static_cast<double*>(p), ds, src); break;
    case DType::I32: copy_from_any(static_cast<int32_t*>(p), ds, src); break;
    case DType::I64: copy_from_any(static_cast<int64_t*>(p), ds, src); break;
    case DType::U8: copy_from_any(static_cast<uint8_t*>(p), ds, src); break;
    case DType::BF16: copy_from_any(static_cast<BF16*>(p), ds, src); break;
    case DType::F16: copy_from_any(static_cast<F16*>(p), ds, src); break;
  }
}

}  // namespace lmlab
