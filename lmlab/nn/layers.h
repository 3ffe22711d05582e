// Basic layers: Linear (weight [out, in], HF/torch layout), Embedding ([V, C]), RMSNorm ([C]).
// Parameter names equal Hugging Face's ("weight", "bias").
#pragma once
#include "lmlab/core/rng.h"
#include "lmlab/nn/module.h"

namespace lmlab {

class Linear : public Module {
 public:
  // Weights ~ N(0, std^2), bias zero.
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, double std = 0.02, DType dtype = DType::F32);
  // Wraps existing tensors (e.g. row slices of a fused weight, see SelfAttention); bias may be undefined.
  Linear(Tensor weight, Tensor bias);
  Tensor forward(const Tensor& x) const;  // [..., in] -> [..., out]
  Tensor weight, bias;
  int64_t in_features, out_features;
};

class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& gen, double std = 0.02, DType dtype = DType::F32);
  Tensor forward(const Tensor& ids) const;  // ids [...] -> [..., C]
  Tensor weight;
};

class RMSNorm : public Module {
 public:
  RMSNorm(int64_t dim, double eps, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;
  Tensor weight;
  double eps;
};

}  // namespace lmlab
