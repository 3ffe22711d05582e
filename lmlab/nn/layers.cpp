// Basic layers.
#include "lmlab/nn/layers.h"

#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/embedding.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/norm.h"

namespace lmlab {

Tensor init_normal(const Shape& shape, Generator& gen, double std, DType dtype) {
  if (SkipInit::active()) return Tensor::empty(shape, dtype);
  Tensor w = Tensor::randn(shape, gen, dtype);
  mul_(w, std);
  return w;
}

Linear::Linear(int64_t in, int64_t out, bool has_bias, Generator& gen, double std, DType dtype)
    : in_features(in), out_features(out) {
  LMLAB_CHECK(in > 0 && out > 0, ConfigError, "[Linear] sizes must be positive, got in ", in, " out ", out);
  Tensor w = init_normal({out, in}, gen, std, dtype);
  weight = register_parameter("weight", w);
  if (has_bias) bias = register_parameter("bias", Tensor::zeros({out}, dtype));
}

Linear::Linear(Tensor w, Tensor b) : in_features(w.size(1)), out_features(w.size(0)) {
  weight = register_parameter("weight", w);
  if (b.defined()) bias = register_parameter("bias", b);
}

Tensor Linear::forward(const Tensor& x) const {
  if (qweight) return qlinear(x, *qweight, bias);
  return linear(x, weight, bias);
}

void Linear::interleave_quantized() {
  if (qweight && qweight->can_interleave()) qweight = std::make_shared<const QMatrix>(qweight->interleaved());
}

void Linear::set_quantized(QMatrix q) {
  LMLAB_CHECK(q.rows == out_features && q.cols == in_features, ShapeError, "[Linear] quantized weight is [", q.rows,
              ", ", q.cols, "], the layer is [", out_features, ", ", in_features, "]");
  qweight = std::make_shared<const QMatrix>(std::move(q));
  if (weight.defined()) {
    replace_parameter("weight", Tensor());
    weight = Tensor();
  }
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen, double std, DType dtype)
    : num_embeddings(num), embedding_dim(dim) {
  LMLAB_CHECK(num > 0 && dim > 0, ConfigError, "[Embedding] sizes must be positive, got ", num, " x ", dim);
  weight = register_parameter("weight", init_normal({num, dim}, gen, std, dtype));
}

Tensor Embedding::forward(const Tensor& ids) const {
  if (qweight) return qembedding(*qweight, ids);
  return embedding(weight, ids);
}

void Embedding::set_quantized(QMatrix q) {
  LMLAB_CHECK(q.rows == num_embeddings && q.cols == embedding_dim, ShapeError, "[Embedding] quantized table is [",
              q.rows, ", ", q.cols, "], the layer is [", num_embeddings, ", ", embedding_dim, "]");
  qweight = std::make_shared<const QMatrix>(std::move(q));
  if (weight.defined()) {
    replace_parameter("weight", Tensor());
    weight = Tensor();
  }
}

RMSNorm::RMSNorm(int64_t dim, double e, DType dtype) : eps(e) {
  weight = register_parameter("weight", SkipInit::active() ? Tensor::empty({dim}, dtype) : Tensor::ones({dim}, dtype));
}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

}  // namespace lmlab
