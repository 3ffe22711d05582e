// Module: named parameters and submodules, with Hugging Face parameter names (STYLE 2.4), so a
// model's state dict is its checkpoint's tensor table. Modules are plain classes with a forward
// method (nanoGPT/tinygrad style); this base only does bookkeeping.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {

// While a SkipInit is alive, layers allocate their parameters without drawing initial values (the
// values are about to be loaded from a checkpoint): no random numbers, and pages never written cost
// no memory, so a model whose weights load quantized never holds an f32 copy.
class SkipInit {
 public:
  SkipInit();
  ~SkipInit();
  SkipInit(const SkipInit&) = delete;
  SkipInit& operator=(const SkipInit&) = delete;
  static bool active();

 private:
  bool prev_;
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Recursive, in registration order, with dotted names ("layers.0.self_attn.q_proj.weight").
  std::vector<std::pair<std::string, Tensor>> named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  // Non-trainable state saved with the model (e.g. MoE routing biases): in state_dict() and
  // load_state_dict(), never in parameters(), so no optimizer touches it.
  std::vector<std::pair<std::string, Tensor>> named_buffers(const std::string& prefix = "") const;
  int64_t num_parameters() const;
  void train(bool on = true);
  bool training() const { return training_; }
  void zero_grad();
  // Copies tensors into the parameters and buffers (converting dtype). strict: every one must be present
  // and no extra names allowed. Shape mismatch -> ShapeError naming the tensor.
  void load_state_dict(const std::map<std::string, Tensor>& sd, bool strict = true);
  std::map<std::string, Tensor> state_dict() const;
  // The submodule at a dotted path ("model.layers.0.self_attn.q_proj"); null when there is none.
  std::shared_ptr<Module> find_module(const std::string& path) const;

 protected:
  // Registers a parameter (requires_grad on) and returns the stored handle.
  Tensor& register_parameter(const std::string& name, Tensor t);
  // Registers a buffer (requires_grad off) and returns the stored handle.
  Tensor& register_buffer(const std::string& name, Tensor t);
  // Swaps the tensor behind a registered parameter; an undefined `t` removes the parameter (a
  // weight that now lives in another form, e.g. quantized). Throws ValueError for an unknown name.
  void replace_parameter(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  std::vector<std::pair<std::string, Tensor>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace lmlab
