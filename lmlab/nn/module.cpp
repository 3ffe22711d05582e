// Module bookkeeping.
#include "lmlab/nn/module.h"

#include <set>

#include "lmlab/core/node.h"

namespace lmlab {

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [n, t] : params_) out.emplace_back(prefix + n, t);
  for (const auto& [n, m] : children_) {
    auto sub = m->named_parameters(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(const std::string& prefix) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [n, t] : buffers_) out.emplace_back(prefix + n, t);
  for (const auto& [n, m] : children_) {
    auto sub = m->named_buffers(prefix + n + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  std::set<const void*> seen;  // tied weights count once
  for (auto& [name, t] : named_parameters())
    if (seen.insert(t.impl()).second) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) t.zero_grad();
}

namespace {
thread_local bool g_skip_init = false;
}
SkipInit::SkipInit() : prev_(g_skip_init) { g_skip_init = true; }
SkipInit::~SkipInit() { g_skip_init = prev_; }
bool SkipInit::active() { return g_skip_init; }

void Module::replace_parameter(const std::string& name, Tensor t) {
  for (auto it = params_.begin(); it != params_.end(); ++it) {
    if (it->first != name) continue;
    if (!t.defined()) {
      params_.erase(it);
    } else {
      t.set_requires_grad(true);
      it->second = t;
    }
    return;
  }
  throw ValueError(str_cat("[module] no parameter named '", name, "' to replace"));
}

Tensor& Module::register_parameter(const std::string& name, Tensor t) {
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return params_.back().second;
}

std::shared_ptr<Module> Module::find_module(const std::string& path) const {
  // Child names may contain dots themselves ("layers.0"), so match whole names as prefixes.
  for (const auto& [n, m] : children_) {
    if (path == n) return m;
    if (path.size() > n.size() && path.compare(0, n.size(), n) == 0 && path[n.size()] == '.')
      if (auto r = m->find_module(path.substr(n.size() + 1))) return r;
  }
  return nullptr;
}

Tensor& Module::register_buffer(const std::string& name, Tensor t) {
  t.set_requires_grad(false);
  buffers_.emplace_back(name, t);
  return buffers_.back().second;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> sd;
  for (auto& [n, t] : named_parameters()) sd.emplace(n, t);
  for (auto& [n, t] : named_buffers()) sd.emplace(n, t);
  return sd;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& sd, bool strict) {
  NoGrad ng;
  std::set<std::string> used;
  auto targets = named_parameters();
  for (auto& b : named_buffers()) targets.push_back(b);
  for (auto& [n, t] : targets) {
    auto it = sd.find(n);
    if (it == sd.end()) {
      LMLAB_CHECK(!strict, FormatError, "[load_state_dict] missing tensor '", n, "' (expected shape ",
                  shape_str(t.shape()), ")");
      continue;
    }
    LMLAB_CHECK(it->second.shape() == t.shape(), ShapeError, "[load_state_dict] tensor '", n, "' has shape ",
                shape_str(it->second.shape()), ", the model expects ", shape_str(t.shape()));
    copy_into(t, it->second);
    used.insert(n);
  }
  if (strict)
    for (auto& [n, t] : sd)
      LMLAB_CHECK(used.count(n), FormatError, "[load_state_dict] unexpected tensor '", n, "' ",
                  shape_str(t.shape()), " not used by the model");
}

}  // namespace lmlab
