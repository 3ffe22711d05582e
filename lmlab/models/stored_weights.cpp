// Stored-precision weights (see stored_weights.h).
#include "lmlab/models/stored_weights.h"

#include "lmlab/nn/layers.h"

namespace lmlab {

QMatrix qmatrix_view(const Tensor& t) {
  LMLAB_CHECK(t.dim() == 2, ShapeError, "[weights] expected a matrix, got ", shape_str(t.shape()));
  const GgmlType type = t.dtype() == DType::BF16  ? GgmlType::BF16
                        : t.dtype() == DType::F16 ? GgmlType::F16
                        : t.dtype() == DType::F32 ? GgmlType::F32
                                                  : throw DTypeError(str_cat("[weights] a ", dtype_name(t.dtype()),
                                                                             " matrix has no QMatrix form"));
  Tensor c = t.contiguous();
  const auto* p = static_cast<const uint8_t*>(c.raw_data());
  std::shared_ptr<const uint8_t> bytes(p, [keep = c](const uint8_t*) {});  // the tensor owns the memory
  return QMatrix::wrap(type, c.size(0), c.size(1), bytes, size_t(c.numel()) * dtype_size(c.dtype()));
}

int64_t attach_half_precision_weights(Module& model, std::map<std::string, Tensor>& sd) {
  int64_t n = 0;
  for (auto it = sd.begin(); it != sd.end();) {
    const std::string& name = it->first;
    const Tensor& t = it->second;
    if ((t.dtype() == DType::BF16 || t.dtype() == DType::F16) && t.dim() == 2 && name.ends_with(".weight")) {
      if (auto lin = std::dynamic_pointer_cast<Linear>(model.find_module(name.substr(0, name.size() - 7)))) {
        LMLAB_CHECK(t.size(0) == lin->out_features && t.size(1) == lin->in_features, ShapeError,
                    "[load_state_dict] tensor '", name, "' has shape ", shape_str(t.shape()), ", the model expects [",
                    lin->out_features, ", ", lin->in_features, "]");
        lin->set_quantized(qmatrix_view(t));
        it = sd.erase(it);
        ++n;
        continue;
      }
      if (auto emb = std::dynamic_pointer_cast<Embedding>(model.find_module(name.substr(0, name.size() - 7)))) {
        emb->set_quantized(qmatrix_view(t));  // shape checked there
        it = sd.erase(it);
        ++n;
        continue;
      }
    }
    ++it;
  }
  return n;
}

void fuse_quantized_weights(Transformer& model) {
  for (const auto& layer : model.model->layers) {
    if (layer->self_attn) layer->self_attn->fuse_quantized();  // MLA / linear mixers have no fused q/k/v
    if (layer->mla) layer->mla->prepare_quantized();
    if (layer->mlp) layer->mlp->fuse_quantized();
    if (layer->moe) {
      for (const auto& e : layer->moe->experts) e->fuse_quantized();
      if (layer->moe->shared_experts) layer->moe->shared_experts->fuse_quantized();
    }
  }
  if (model.lm_head) model.lm_head->interleave_quantized();
}

}  // namespace lmlab
