// Basic layers: Linear (weight [out, in], HF/torch layout), Embedding ([V, C]), RMSNorm ([C]).
// Parameter names equal Hugging Face's ("weight", "bias").
#pragma once
#include "lmlab/core/rng.h"
#include "lmlab/nn/module.h"
#include "lmlab/ops/qmatmul.h"

namespace lmlab {

// N(0, std^2) values of `shape`, or an uninitialised tensor under SkipInit (module.h).
Tensor init_normal(const Shape& shape, Generator& gen, double std, DType dtype = DType::F32);

class Linear : public Module {
 public:
  // Weights ~ N(0, std^2), bias zero.
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, double std = 0.02, DType dtype = DType::F32);
  // Wraps existing tensors (e.g. row slices of a fused weight, see SelfAttention); bias may be undefined.
  Linear(Tensor weight, Tensor bias);
  Tensor forward(const Tensor& x) const;  // [..., in] -> [..., out]
  // Inference from a quantized or half-precision weight (ops/qmatmul.h: Q8_0, Q4_K, Q6_K, BF16,
  // F16 ...): the f32 `weight` parameter is dropped and forward runs qlinear. `q` must be
  // [out_features, in_features] (ShapeError otherwise). The bias, if any, stays an f32 parameter.
  void set_quantized(QMatrix q);
  // Re-lays a Q8_0 quantized weight out in interleaved row groups for decoding
  // (QMatrix::interleaved); a no-op for other weights.
  void interleave_quantized();
  bool quantized() const { return qweight != nullptr; }
  Tensor weight, bias;
  std::shared_ptr<const QMatrix> qweight;
  int64_t in_features, out_features;
};

class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& gen, double std = 0.02, DType dtype = DType::F32);
  Tensor forward(const Tensor& ids) const;  // ids [...] -> [..., C]
  // Inference from a table kept in its stored type (a quantized GGUF embedding, used straight from
  // the file mapping): the `weight` parameter is dropped and forward looks rows up with qembedding
  // (f32 out). `q` must be [num, dim] (ShapeError otherwise).
  void set_quantized(QMatrix q);
  bool quantized() const { return qweight != nullptr; }
  Tensor weight;
  std::shared_ptr<const QMatrix> qweight;
  int64_t num_embeddings, embedding_dim;
};

class RMSNorm : public Module {
 public:
  RMSNorm(int64_t dim, double eps, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;
  Tensor weight;
  double eps;
};

}  // namespace lmlab
