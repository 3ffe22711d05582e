// Causal language modelling objective: mean next-token cross-entropy (nats) over a batch, computed
// with the fused cross-entropy so only the logits buffer itself is vocabulary-sized.
#pragma once
#include "lmlab/models/transformer.h"

namespace lmlab {

struct CausalLMOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  double z_loss = 0.0;
};

// inputs, targets [B, T] i64 -> scalar loss (differentiable w.r.t. the model's parameters).
Tensor causal_lm_loss(const Transformer& model, const Tensor& inputs, const Tensor& targets,
                      const CausalLMOptions& opt = {});

}  // namespace lmlab
