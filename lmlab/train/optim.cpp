// Optimizer implementations. Updates run under NoGrad as fused per-parameter loops.
#include "lmlab/train/optim.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "lmlab/core/node.h"
#include "lmlab/core/parallel.h"
#include "lmlab/io/safetensors.h"

namespace lmlab {

namespace {
void check_param(const Tensor& p, const char* who) {
  LMLAB_CHECK(p.defined(), ValueError, "[", who, "] undefined parameter");
  LMLAB_CHECK(p.dtype() == DType::F32 || p.dtype() == DType::F64, DTypeError, "[", who,
              "] parameters must be f32 or f64 (keep f32 master weights), got ", dtype_name(p.dtype()));
  LMLAB_CHECK(p.is_contiguous(), ValueError, "[", who, "] parameters must be contiguous");
}

Tensor grad_of(const Tensor& p) {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  if (g.dtype() != p.dtype()) g = g.to(p.dtype());
  return g.is_contiguous() ? g : g.contiguous();
}

std::string key(size_t g, size_t i, const char* slot) {
  return "g" + std::to_string(g) + ".p" + std::to_string(i) + "." + slot;
}
}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  for (auto& g : groups_) g.lr = lr;
}

void Optimizer::save(const std::string& path) const {
  std::map<std::string, std::string> meta;
  auto st = state(meta);
  meta["step"] = std::to_string(step_);
  save_safetensors(path, st, meta);
}

void Optimizer::load(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::open(path);
  std::map<std::string, Tensor> t;
  for (const auto& n : f.names()) {
    Tensor v = f.get(n);
    Tensor c = Tensor::empty(v.shape(), v.dtype());
    copy_into(c, v);
    t[n] = c;
  }
  auto meta = f.metadata();
  LMLAB_CHECK(meta.count("step"), FormatError, "[optim] '", path, "' has no 'step' metadata");
  load_state(t, meta);
  step_ = std::stoll(meta.at("step"));
}

// ---- AdamW ----
AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions opt) : Optimizer(std::move(groups)), opt_(opt) {
  LMLAB_CHECK(opt.lr >= 0 && opt.eps >= 0 && opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1,
              ConfigError, "[AdamW] invalid hyperparameters: lr ", opt.lr, " betas (", opt.beta1, ", ", opt.beta2,
              ") eps ", opt.eps);
  for (auto& g : groups_) {
    std::vector<Tensor> ms, vs;
    for (auto& p : g.params) {
      check_param(p, "AdamW");
      ms.push_back(Tensor::zeros(p.shape(), p.dtype()));
      vs.push_back(Tensor::zeros(p.shape(), p.dtype()));
    }
    m_.push_back(ms);
    v_.push_back(vs);
  }
}

AdamW::AdamW(const std::vector<Tensor>& params, AdamWOptions opt)
    : AdamW(std::vector<ParamGroup>{ParamGroup{params, opt.lr, opt.weight_decay}}, opt) {}

namespace {
template <class T>
void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, double lr, double wd, double b1, double b2, double eps,
                  double bc1, double bc2) {
  T decay = T(1.0 - lr * wd), step_size = T(lr / bc1), sq_bc2 = T(std::sqrt(bc2));
  T tb1 = T(b1), tb2 = T(b2), te = T(eps);
  parallel_for(0, n, 1 << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      T gi = g[i];
      T mi = tb1 * m[i] + (T(1) - tb1) * gi;
      T vi = tb2 * v[i] + (T(1) - tb2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      T denom = std::sqrt(vi) / sq_bc2 + te;
      p[i] = p[i] * decay - step_size * mi / denom;
    }
  });
}
}  // namespace

void AdamW::step() {
  NoGrad ng;
  ++step_;
  double bc1 = 1.0 - std::pow(opt_.beta1, double(step_)), bc2 = 1.0 - std::pow(opt_.beta2, double(step_));
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& grp = groups_[gi];
    for (size_t i = 0; i < grp.params.size(); ++i) {
      Tensor& p = grp.params[i];
      Tensor g = grad_of(p);
      if (!g.defined()) continue;
      if (p.dtype() == DType::F32)
        adamw_kernel<float>(p.data<float>(), g.data<float>(), m_[gi][i].data<float>(), v_[gi][i].data<float>(),
                            p.numel(), grp.lr, grp.weight_decay, opt_.beta1, opt_.beta2, opt_.eps, bc1, bc2);
      else
        adamw_kernel<double>(p.data<double>(), g.data<double>(), m_[gi][i].data<double>(), v_[gi][i].data<double>(),
                             p.numel(), grp.lr, grp.weight_decay, opt_.beta1, opt_.beta2, opt_.eps, bc1, bc2);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state(std::map<std::string, std::string>& meta) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t g = 0; g < m_.size(); ++g) {
    meta["g" + std::to_string(g) + ".lr"] = std::to_string(groups_[g].lr);
    for (size_t i = 0; i < m_[g].size(); ++i) {
      out.emplace_back(key(g, i, "exp_avg"), m_[g][i]);
      out.emplace_back(key(g, i, "exp_avg_sq"), v_[g][i]);
    }
  }
  meta["optimizer"] = "AdamW";
  return out;
}

void AdamW::load_state(const std::map<std::string, Tensor>& t, const std::map<std::string, std::string>& meta) {
  LMLAB_CHECK(meta.count("optimizer") && meta.at("optimizer") == "AdamW", FormatError,
              "[AdamW] state was not written by AdamW");
  for (size_t g = 0; g < m_.size(); ++g) {
    auto lr_it = meta.find("g" + std::to_string(g) + ".lr");
    if (lr_it != meta.end()) groups_[g].lr = std::stod(lr_it->second);
    for (size_t i = 0; i < m_[g].size(); ++i) {
      for (auto [slot, dst] : {std::pair<const char*, Tensor*>{"exp_avg", &m_[g][i]}, {"exp_avg_sq", &v_[g][i]}}) {
        auto it = t.find(key(g, i, slot));
        LMLAB_CHECK(it != t.end(), FormatError, "[AdamW] optimizer state lacks '", key(g, i, slot), "'");
        LMLAB_CHECK(it->second.shape() == dst->shape(), ShapeError, "[AdamW] state '", key(g, i, slot), "' has shape ",
                    shape_str(it->second.shape()), ", parameter has ", shape_str(dst->shape()));
        copy_into(*dst, it->second);
      }
    }
  }
}

// ---- SGD ----
SGD::SGD(std::vector<ParamGroup> groups, SGDOptions opt) : Optimizer(std::move(groups)), opt_(opt) {
  LMLAB_CHECK(opt.lr >= 0 && opt.momentum >= 0, ConfigError, "[SGD] invalid lr ", opt.lr, " or momentum ",
              opt.momentum);
  LMLAB_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0), ConfigError,
              "[SGD] Nesterov momentum requires momentum > 0 and dampening 0");
  for (auto& g : groups_) {
    for (auto& p : g.params) check_param(p, "SGD");
    buf_.emplace_back(g.params.size());
  }
}

SGD::SGD(const std::vector<Tensor>& params, SGDOptions opt)
    : SGD(std::vector<ParamGroup>{ParamGroup{params, opt.lr, opt.weight_decay}}, opt) {}

namespace {
template <class T>
void sgd_kernel(T* p, const T* g, T* buf, int64_t n, bool first, double lr, double wd, const SGDOptions& o) {
  for (int64_t k = 0; k < n; ++k) {
    T gk = g[k] + T(wd) * p[k];
    if (buf) {
      buf[k] = first ? gk : T(o.momentum) * buf[k] + T(1 - o.dampening) * gk;
      gk = o.nesterov ? gk + T(o.momentum) * buf[k] : buf[k];
    }
    p[k] -= T(lr) * gk;
  }
}
}  // namespace

void SGD::step() {
  NoGrad ng;
  ++step_;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    auto& grp = groups_[gi];
    for (size_t i = 0; i < grp.params.size(); ++i) {
      Tensor& p = grp.params[i];
      Tensor d = grad_of(p);  // contiguous, in the parameter's dtype; read only
      if (!d.defined()) continue;
      // Momentum buffer semantics of torch.optim.SGD: buf = g on the first step, then mom*buf + (1-damp)*g.
      bool first = !buf_[gi][i].defined();
      if (opt_.momentum != 0 && first) buf_[gi][i] = Tensor::zeros(p.shape(), p.dtype());
      if (p.dtype() == DType::F32)
        sgd_kernel<float>(p.data<float>(), d.data<float>(), opt_.momentum != 0 ? buf_[gi][i].data<float>() : nullptr,
                          p.numel(), first, grp.lr, grp.weight_decay, opt_);
      else
        sgd_kernel<double>(p.data<double>(), d.data<double>(),
                           opt_.momentum != 0 ? buf_[gi][i].data<double>() : nullptr, p.numel(), first, grp.lr,
                           grp.weight_decay, opt_);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> SGD::state(std::map<std::string, std::string>& meta) const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t g = 0; g < buf_.size(); ++g) {
    meta["g" + std::to_string(g) + ".lr"] = std::to_string(groups_[g].lr);
    for (size_t i = 0; i < buf_[g].size(); ++i)
      if (buf_[g][i].defined()) out.emplace_back(key(g, i, "momentum_buffer"), buf_[g][i]);
  }
  meta["optimizer"] = "SGD";
  return out;
}

void SGD::load_state(const std::map<std::string, Tensor>& t, const std::map<std::string, std::string>& meta) {
  LMLAB_CHECK(meta.count("optimizer") && meta.at("optimizer") == "SGD", FormatError,
              "[SGD] state was not written by SGD");
  for (size_t g = 0; g < buf_.size(); ++g) {
    auto lr_it = meta.find("g" + std::to_string(g) + ".lr");
    if (lr_it != meta.end()) groups_[g].lr = std::stod(lr_it->second);
    for (size_t i = 0; i < buf_[g].size(); ++i) {
      auto it = t.find(key(g, i, "momentum_buffer"));
      if (it == t.end()) {
        buf_[g][i] = Tensor();
        continue;
      }
      LMLAB_CHECK(it->second.shape() == groups_[g].params[i].shape(), ShapeError, "[SGD] state '",
                  key(g, i, "momentum_buffer"), "' has wrong shape ", shape_str(it->second.shape()));
      buf_[g][i] = Tensor::empty(it->second.shape(), groups_[g].params[i].dtype());
      copy_into(buf_[g][i], it->second);
    }
  }
}

namespace {
// Sum of squares in double over both threads: 8 independent partial sums per thread (a single running
// sum is a serial chain of double adds the compiler may not reorder), combined in a fixed order.
template <class T>
double sum_squares(const T* d, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(size_t(nchunks), 0.0);
  parallel_for(0, nchunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const int64_t b = c * kChunk, e = std::min(n, b + kChunk);
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = b;
      for (; i + 8 <= e; i += 8)
        for (int l = 0; l < 8; ++l) acc[l] += double(d[i + l]) * double(d[i + l]);
      for (; i < e; ++i) acc[0] += double(d[i]) * double(d[i]);
      part[size_t(c)] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

// out = g * s (a private buffer: the gradient may be shared with a graph temporary).
template <class T>
void scaled_copy(const T* g, T* out, int64_t n, double s) {
  parallel_for(0, n, 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = T(double(g[i]) * s);
  });
}
}  // namespace

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGrad ng;
  double total = 0;
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!g.is_contiguous() || (g.dtype() != DType::F32 && g.dtype() != DType::F64)) {
      g = g.to(p.dtype()).contiguous();
      p.set_grad(g);
    }
    total += g.dtype() == DType::F32 ? sum_squares(g.data<float>(), g.numel()) : sum_squares(g.data<double>(), g.numel());
  }
  double norm = std::sqrt(total);
  if (norm > max_norm && norm > 0) {
    double s = max_norm / (norm + 1e-6);
    for (const auto& p : params) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      Tensor out = Tensor::empty(g.shape(), g.dtype());
      if (g.dtype() == DType::F32) scaled_copy(g.data<float>(), out.data<float>(), g.numel(), s);
      else scaled_copy(g.data<double>(), out.data<double>(), g.numel(), s);
      p.set_grad(out);
    }
  }
  return norm;
}

}  // namespace lmlab
