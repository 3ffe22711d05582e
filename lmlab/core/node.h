// Autograd graph nodes (define-by-run). An op that sees an input requiring grad creates a Node
// holding the tensors its backward needs; the engine in autograd/ walks the nodes in reverse.
// Lives in core because Tensor points at its producing node.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {

// Where a gradient flows: into another node, or (for a leaf) into the leaf's .grad.
struct Edge {
  std::shared_ptr<Node> fn;
  std::shared_ptr<TensorImpl> leaf;
  bool valid() const { return fn || leaf; }
};

struct Node {
  using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad, const std::vector<Tensor>& saved)>;

  std::string name;
  std::vector<Edge> next;            // one per op input; invalid when that input needs no grad
  std::vector<Tensor> saved;         // what the backward needs; freed after backward unless retained
  BackwardFn fn;
  std::vector<Tensor::Hook> out_hooks;  // hooks registered on the (non-leaf) output tensor
  std::weak_ptr<TensorImpl> retain;     // non-leaf output whose .grad should be kept
  bool released = false;
  int64_t seq = 0;  // creation order; the engine runs later nodes first

  std::vector<Tensor> apply(const Tensor& grad);
  void release() {
    saved.clear();
    saved.shrink_to_fit();
    released = true;
  }
};

// Thread-local switch: when disabled, ops record no nodes (inference, optimizer updates).
struct GradMode {
  static bool enabled();
  static void set_enabled(bool on);
};

// RAII guard that turns gradient recording off in its scope.
class NoGrad {
 public:
  NoGrad() : prev_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGrad() { GradMode::set_enabled(prev_); }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool prev_;
};

// Record `out` as produced by `name` from `inputs`. When grad mode is on and any input requires
// grad, attaches a node with `saved` and `fn` (fn returns one gradient per input, undefined = none).
Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor> saved,
              Node::BackwardFn fn);
bool any_requires_grad(const std::vector<Tensor>& inputs);

}  // namespace lmlab
