// Inverted dropout: validation, reference and fast kernels (one flat loop each), autograd wiring.
// Element i (in logical order) is kept when philox_uniform_f(seed, base + i) >= p, where base comes
// from gen.reserve(numel): the mask is a function of the counters only, never of the thread split.
// Reference: torch.nn.functional.dropout (Srivastava et al. 2014).
#include "lmlab/ops/dropout.h"

#include "lmlab/ops/dispatch.h"

namespace lmlab {

using namespace detail;

namespace {

constexpr const char* kOp = "dropout";
constexpr int64_t kGrain = 1 << 13;

struct MaskSpec {
  uint64_t key, base;
  double p, scale;
  bool keep(int64_t i) const { return double(philox_uniform_f(key, base + uint64_t(i))) >= p; }
};

// Reference: logical order through x's strides, double arithmetic.
template <class T>
void dropout_ref(const Tensor& x, const MaskSpec& m, uint8_t* mask, T* y) {
  const T* xp = static_cast<const T*>(x.raw_data());
  for (int64_t i = 0; i < x.numel(); ++i) {
    mask[i] = m.keep(i) ? 1 : 0;
    y[i] = mask[i] ? T(double(xp[offset_of(i, x.shape(), x.strides())]) * m.scale) : T(0);
  }
}

// Fast: contiguous x, threads over element ranges (each element draws its own counter).
template <class T>
void dropout_fast(const T* x, int64_t n, const MaskSpec& m, uint8_t* mask, T* y) {
  const T scale = T(m.scale);
  parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) mask[i] = m.keep(i) ? 1 : 0;
    for (int64_t i = lo; i < hi; ++i) y[i] = mask[i] ? x[i] * scale : T(0);
  });
}

// gx = g * mask * scale, with the mask saved by the forward.
Tensor dropout_backward(const Tensor& g, const Tensor& mask, double scale) {
  Tensor gx = Tensor::empty(mask.shape(), g.dtype());
  const uint8_t* mp = mask.data<uint8_t>();
  LMLAB_DISPATCH_FLOAT(g.dtype(), kOp, [&] {
    scalar_t* o = gx.data<scalar_t>();
    const int64_t n = gx.numel();
    if (reference_mode()) {
      const scalar_t* gp = static_cast<const scalar_t*>(g.raw_data());
      for (int64_t i = 0; i < n; ++i)
        o[i] = mp[i] ? scalar_t(double(gp[offset_of(i, g.shape(), g.strides())]) * scale) : scalar_t(0);
      return;
    }
    Tensor gc = contig(g);
    const scalar_t* gp = gc.data<scalar_t>();
    const scalar_t s = scalar_t(scale);
    parallel_for(0, n, kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) o[i] = mp[i] ? gp[i] * s : scalar_t(0);
    });
  });
  return gx;
}

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_float(x, kOp, "x");
  LMLAB_CHECK(p >= 0 && p <= 1, ValueError, "[dropout] probability p must be in [0, 1]: got ", p);
  if (!training || p == 0) return x;
  const int64_t n = x.numel();
  // p == 1 drops everything; scale 0 keeps 0 * inf out of the arithmetic.
  MaskSpec m{gen.seed(), gen.reserve(uint64_t(n)), p, p < 1 ? 1.0 / (1.0 - p) : 0.0};
  Tensor mask = Tensor::empty(x.shape(), DType::U8);  // saved for the backward: 1 byte per element
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  LMLAB_DISPATCH_FLOAT(x.dtype(), kOp, [&] {
    if (reference_mode()) {
      dropout_ref<scalar_t>(x, m, mask.data<uint8_t>(), y.data<scalar_t>());
    } else {
      Tensor xc = contig(x.detach());
      dropout_fast<scalar_t>(xc.data<scalar_t>(), n, m, mask.data<uint8_t>(), y.data<scalar_t>());
    }
  });
  return record(y, kOp, {x}, {mask}, [scale = m.scale, dt = x.dtype()](const Tensor& g, const std::vector<Tensor>& s) {
    return std::vector<Tensor>{dropout_backward(g.dtype() == dt ? g : g.to(dt), s[0], scale)};
  });
}

}  // namespace lmlab
