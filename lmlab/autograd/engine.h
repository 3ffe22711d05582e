// The backward driver: walks the recorded graph from an output in reverse creation order,
// accumulating gradients into leaves' .grad (PyTorch semantics: accumulation across calls,
// hooks, retain_grad, retain_graph).
#pragma once
#include <vector>

#include "lmlab/core/node.h"
#include "lmlab/core/tensor.h"

namespace lmlab {

// Backpropagates `grad` (default: ones for a one-element output) from `output`.
void backward(const Tensor& output, const Tensor& grad = Tensor(), bool retain_graph = false);

// Functional form: gradients of `output` w.r.t. `inputs` (which must require grad), without
// touching any .grad. Undefined entries where an input does not influence the output.
std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output = Tensor(),
                         bool retain_graph = false);

}  // namespace lmlab
