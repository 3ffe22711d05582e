// Basic layers.
#include "lmlab/nn/layers.h"

#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/embedding.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/norm.h"

namespace lmlab {

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen, double std, DType dtype)
    : in_features(in), out_features(out) {
  LMLAB_CHECK(in > 0 && out > 0, ConfigError, "[Linear] sizes must be positive, got in ", in, " out ", out);
  Tensor w = Tensor::randn({out, in}, gen, dtype);
  mul_(w, std);
  weight = register_parameter("weight", w);
  if (has_bias) bias = register_parameter("bias", Tensor::zeros({out}, dtype));
}

Linear::Linear(Tensor w, Tensor b) : in_features(w.size(1)), out_features(w.size(0)) {
  weight = register_parameter("weight", w);
  if (b.defined()) bias = register_parameter("bias", b);
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen, double std, DType dtype) {
  LMLAB_CHECK(num > 0 && dim > 0, ConfigError, "[Embedding] sizes must be positive, got ", num, " x ", dim);
  Tensor w = Tensor::randn({num, dim}, gen, dtype);
  mul_(w, std);
  weight = register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight, ids); }

RMSNorm::RMSNorm(int64_t dim, double e, DType dtype) : eps(e) {
  weight = register_parameter("weight", Tensor::ones({dim}, dtype));
}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

}  // namespace lmlab
