// Tensor: a cheap handle to (shared storage, shape, strides, offset, dtype, device, autograd node).
// Copying a Tensor copies the handle; views share storage. Methods that build autograd nodes
// (views, arithmetic, backward) are declared here and defined in ops/ and autograd/, as ATen does.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmlab/core/device.h"
#include "lmlab/core/dtype.h"
#include "lmlab/core/error.h"
#include "lmlab/core/shape.h"
#include "lmlab/core/storage.h"

namespace lmlab {

class Generator;
struct Node;
struct TensorImpl;

class Tensor {
 public:
  using Hook = std::function<class Tensor(const class Tensor&)>;

  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (core) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  static Tensor ones(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);
  static Tensor scalar(double value, DType dtype = DType::F32);
  static Tensor arange(int64_t n, DType dtype = DType::I64);
  static Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32);   // U[0,1)
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32);  // N(0,1)
  template <class T>
  static Tensor from_vector(const std::vector<T>& v, const Shape& shape);
  template <class T>
  static Tensor from_vector(const std::vector<T>& v) { return from_vector(v, Shape{int64_t(v.size())}); }
  // Wraps existing storage (no copy).
  static Tensor from_storage(std::shared_ptr<Storage> st, const Shape& shape, const Strides& strides,
                             int64_t offset, DType dtype);

  // ---- metadata (core) ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Strides& strides() const;
  int64_t offset() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }
  std::string to_string(int64_t max_elems = 32) const;

  // Pointer to the first element (at offset). Checks the dtype matches T.
  template <class T>
  T* data() const;
  void* raw_data() const;  // untyped, at offset

  // Element access (slow; tests and debugging).
  double item() const;
  double at(const std::vector<int64_t>& idx) const;
  template <class T>
  std::vector<T> to_vector() const;  // converts any dtype to T, in logical order

  // Raw strided view without autograd (core). Bounds are checked against the storage.
  Tensor as_strided(const Shape& shape, const Strides& strides, int64_t offset) const;

  // ---- autograd state (core) ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r = true);
  bool is_leaf() const;
  const std::shared_ptr<Node>& grad_fn() const;
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops .grad
  // A hook sees the gradient w.r.t. this tensor and may return a replacement (or an undefined
  // Tensor to keep it). On leaves it runs before accumulation into .grad.
  void register_hook(Hook h) const;
  void retain_grad() const;  // keep .grad for a non-leaf
  Tensor detach() const;     // shares storage, no autograd history

  // ---- defined in autograd/ ----
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

  // ---- defined in ops/ (differentiable) ----
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor view(const Shape& shape) const;     // requires compatible strides
  Tensor reshape(const Shape& shape) const;  // view when possible, else copy
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  Tensor grad;
  std::vector<Tensor::Hook> hooks;  // leaf hooks (non-leaf hooks live on grad_fn)
};

// Copies src into dst elementwise (same shape, any strides, converting dtypes). No autograd.
void copy_into(const Tensor& dst, const Tensor& src);

}  // namespace lmlab
