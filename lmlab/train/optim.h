// Optimizers: AdamW (Loshchilov & Hutter, decoupled weight decay; torch.optim.AdamW semantics),
// SGD with momentum/Nesterov (torch.optim.SGD semantics), global-norm gradient clipping.
// Parameter groups carry their own lr / weight decay. State saves to and loads from safetensors.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3;
  double weight_decay = 0.0;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  std::vector<ParamGroup>& groups() { return groups_; }
  void set_lr(double lr);  // all groups
  int64_t steps() const { return step_; }
  // Named state tensors ("g{group}.p{index}.{slot}") plus scalars in `meta`.
  virtual std::vector<std::pair<std::string, Tensor>> state(std::map<std::string, std::string>& meta) const = 0;
  virtual void load_state(const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& meta) = 0;
  void save(const std::string& path) const;  // atomic safetensors
  void load(const std::string& path);

 protected:
  explicit Optimizer(std::vector<ParamGroup> groups);
  std::vector<ParamGroup> groups_;
  int64_t step_ = 0;
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions opt);
  AdamW(const std::vector<Tensor>& params, AdamWOptions opt);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state(std::map<std::string, std::string>& meta) const override;
  void load_state(const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& meta) override;
  const AdamWOptions& options() const { return opt_; }

 private:
  AdamWOptions opt_;
  std::vector<std::vector<Tensor>> m_, v_;  // per group, per param (f32/f64 like the param)
};

struct SGDOptions {
  double lr = 1e-2, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, SGDOptions opt);
  SGD(const std::vector<Tensor>& params, SGDOptions opt);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state(std::map<std::string, std::string>& meta) const override;
  void load_state(const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& meta) override;

 private:
  SGDOptions opt_;
  std::vector<std::vector<Tensor>> buf_;
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace lmlab
