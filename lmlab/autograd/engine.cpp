// Backward engine. Nodes are processed in decreasing creation order (a valid reverse topological
// order for define-by-run graphs), each once, after all gradients flowing into it were summed.
#include "lmlab/autograd/engine.h"

#include <map>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "lmlab/ops/elementwise.h"

namespace lmlab {

namespace {

struct SeqLess {
  bool operator()(const Node* a, const Node* b) const { return a->seq < b->seq; }
};

Tensor accumulate(const Tensor& acc, const Tensor& g) {
  if (!acc.defined()) return g;
  if (!g.defined()) return acc;
  return add(acc, g);
}

Tensor run_hooks(const std::vector<Tensor::Hook>& hooks, Tensor g) {
  for (const auto& h : hooks) {
    Tensor r = h(g);
    if (r.defined()) g = r;
  }
  return g;
}

// Runs the graph; leaf gradients are handed to `on_leaf` (impl, grad).
template <class OnLeaf>
void run(const Tensor& output, const Tensor& grad_in, bool retain_graph, OnLeaf&& on_leaf,
         const std::unordered_set<const Node*>* capture_nodes = nullptr,
         std::unordered_map<const Node*, Tensor>* captured = nullptr) {
  LMLAB_CHECK(output.defined(), AutogradError, "[backward] undefined output tensor");
  LMLAB_CHECK(output.requires_grad(), AutogradError,
              "[backward] output does not require grad (no input requires grad, or it was computed under NoGrad)");
  Tensor g0 = grad_in;
  if (!g0.defined()) {
    LMLAB_CHECK(output.numel() == 1, AutogradError, "[backward] grad can be implicit only for one-element outputs, got ",
                shape_str(output.shape()));
    g0 = Tensor::ones(output.shape(), output.dtype());
  }
  LMLAB_CHECK(g0.shape() == output.shape(), ShapeError, "[backward] gradient shape ", shape_str(g0.shape()),
              " differs from output shape ", shape_str(output.shape()));
  NoGrad ng;  // backward computations are not recorded (no double backward)
  if (output.is_leaf()) {
    on_leaf(output.impl_ptr(), g0);
    return;
  }
  std::unordered_map<const Node*, Tensor> grads;
  std::priority_queue<Node*, std::vector<Node*>, SeqLess> ready;
  std::unordered_set<const Node*> queued;
  std::vector<std::shared_ptr<Node>> keep;  // keeps nodes alive while running
  std::map<TensorImpl*, std::pair<std::shared_ptr<TensorImpl>, Tensor>> leaf_grads;
  Node* root = output.grad_fn().get();
  keep.push_back(output.grad_fn());
  grads[root] = g0;
  ready.push(root);
  queued.insert(root);
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    Tensor g = grads[n];
    grads.erase(n);
    g = run_hooks(n->out_hooks, g);
    if (auto r = n->retain.lock()) r->grad = accumulate(r->grad, g);
    if (captured && capture_nodes->count(n)) (*captured)[n] = accumulate((*captured)[n], g);
    std::vector<Tensor> in_grads = n->apply(g);
    LMLAB_ASSERT(in_grads.size() == n->next.size(), "node ", n->name, " returned ", in_grads.size(), " grads for ",
                 n->next.size(), " inputs");
    for (size_t i = 0; i < n->next.size(); ++i) {
      const Edge& e = n->next[i];
      const Tensor& gi = in_grads[i];
      if (!e.valid() || !gi.defined()) continue;
      if (e.fn) {
        grads[e.fn.get()] = accumulate(grads[e.fn.get()], gi);
        if (!queued.count(e.fn.get())) {
          queued.insert(e.fn.get());
          keep.push_back(e.fn);
          ready.push(e.fn.get());
        }
      } else {
        auto& slot = leaf_grads[e.leaf.get()];
        slot.first = e.leaf;
        slot.second = accumulate(slot.second, gi);
      }
    }
    if (!retain_graph) n->release();
  }
  for (auto& [p, lg] : leaf_grads) on_leaf(lg.first, lg.second);
}

}  // namespace

void backward(const Tensor& output, const Tensor& grad, bool retain_graph) {
  run(output, grad, retain_graph, [](const std::shared_ptr<TensorImpl>& leaf, const Tensor& g) {
    Tensor gg = run_hooks(leaf->hooks, g);
    if (gg.dtype() != leaf->dtype) gg = gg.to(leaf->dtype);
    if (gg.shape() != leaf->shape) gg = gg.reshape(leaf->shape);
    // Own the gradient buffer: it may be a view of a graph temporary.
    if (!leaf->grad.defined()) leaf->grad = gg.is_contiguous() && gg.offset() == 0 ? gg : gg.contiguous();
    else leaf->grad = add(leaf->grad, gg);
  });
}

void Tensor::backward(const Tensor& g, bool retain_graph) const { lmlab::backward(*this, g, retain_graph); }

std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output,
                         bool retain_graph) {
  std::vector<Tensor> out(inputs.size());
  std::unordered_map<const TensorImpl*, size_t> leaf_index;
  std::unordered_set<const Node*> nodes;
  std::unordered_map<const Node*, size_t> node_index;
  for (size_t i = 0; i < inputs.size(); ++i) {
    LMLAB_CHECK(inputs[i].defined() && inputs[i].requires_grad(), AutogradError, "[grad] input ", i,
                " does not require grad");
    if (inputs[i].is_leaf()) leaf_index[inputs[i].impl()] = i;
    else {
      nodes.insert(inputs[i].grad_fn().get());
      node_index[inputs[i].grad_fn().get()] = i;
    }
  }
  std::unordered_map<const Node*, Tensor> captured;
  run(output, grad_output, retain_graph,
      [&](const std::shared_ptr<TensorImpl>& leaf, const Tensor& g) {
        auto it = leaf_index.find(leaf.get());
        if (it != leaf_index.end()) out[it->second] = accumulate(out[it->second], g);
      },
      &nodes, &captured);
  for (auto& [n, g] : captured) out[node_index[n]] = g;
  return out;
}

}  // namespace lmlab
