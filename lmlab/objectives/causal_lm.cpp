// Causal LM loss.
#include "lmlab/objectives/causal_lm.h"

#include "lmlab/ops/cross_entropy.h"

namespace lmlab {

Tensor causal_lm_loss(const Transformer& model, const Tensor& inputs, const Tensor& targets,
                      const CausalLMOptions& opt) {
  LMLAB_CHECK(inputs.shape() == targets.shape(), ShapeError, "[causal_lm] inputs ", shape_str(inputs.shape()),
              " and targets ", shape_str(targets.shape()), " differ");
  Tensor logits = model.forward(inputs);                    // [B, T, V]
  CrossEntropyOptions ce;
  ce.ignore_index = opt.ignore_index;
  ce.label_smoothing = opt.label_smoothing;
  ce.z_loss = opt.z_loss;
  return cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}), ce);  // scalar
}

}  // namespace lmlab
