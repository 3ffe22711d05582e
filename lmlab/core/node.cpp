// Node recording and grad mode.
#include "lmlab/core/node.h"

#include <atomic>

namespace lmlab {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<int64_t> g_seq{0};
}  // namespace

bool GradMode::enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool on) { g_grad_enabled = on; }

std::vector<Tensor> Node::apply(const Tensor& grad) {
  LMLAB_CHECK(!released, AutogradError, "[backward] node '", name,
              "' was already freed by an earlier backward(); pass retain_graph=true to backward twice");
  return fn(grad, saved);
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor> saved,
              Node::BackwardFn fn) {
  if (!GradMode::enabled() || !any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->seq = g_seq.fetch_add(1);
  node->next.reserve(inputs.size());
  for (const auto& t : inputs) {
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.grad_fn()) e.fn = t.grad_fn();
      else e.leaf = t.impl_ptr();
    }
    node->next.push_back(e);
  }
  node->saved = std::move(saved);
  node->fn = std::move(fn);
  // `out` may alias an input handle's impl only if the op returned an input; give it a fresh impl.
  auto impl = std::make_shared<TensorImpl>(*out.impl());
  impl->grad = Tensor();
  impl->hooks.clear();
  impl->requires_grad = true;
  impl->grad_fn = node;
  return Tensor(impl);
}

}  // namespace lmlab
