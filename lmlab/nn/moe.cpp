// Sparse mixture-of-experts: routing, grouped dispatch/combine, router statistics and the module.
#include "lmlab/nn/moe.h"

#include <algorithm>
#include <cmath>

#include "lmlab/core/node.h"
#include "lmlab/core/parallel.h"
#include "lmlab/ops/cpu/swiglu_kernels.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/index.h"
#include "lmlab/ops/join.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/mode.h"
#include "lmlab/ops/reduce.h"
#include "lmlab/ops/softmax.h"
#include "lmlab/ops/sort.h"
#include "lmlab/ops/swiglu.h"

namespace lmlab {

void MoEConfig::validate() const {
  LMLAB_CHECK(hidden > 0, ConfigError, "[moe] hidden_size must be positive, got ", hidden);
  LMLAB_CHECK(num_experts > 0, ConfigError, "[moe] num_experts must be positive, got ", num_experts);
  LMLAB_CHECK(top_k > 0, ConfigError, "[moe] num_experts_per_tok must be positive, got ", top_k);
  LMLAB_CHECK(top_k <= num_experts, ConfigError, "[moe] num_experts_per_tok (", top_k,
              ") must not exceed num_experts (", num_experts, ")");
  LMLAB_CHECK(expert_intermediate > 0, ConfigError, "[moe] moe_intermediate_size must be positive, got ",
              expert_intermediate);
  LMLAB_CHECK(std::isfinite(routed_scaling_factor) && routed_scaling_factor > 0, ConfigError,
              "[moe] routed_scaling_factor must be positive, got ", routed_scaling_factor);
  LMLAB_CHECK(num_shared_experts >= 0, ConfigError, "[moe] n_shared_experts must be >= 0, got ", num_shared_experts);
  LMLAB_CHECK(shared_intermediate >= 0, ConfigError, "[moe] shared expert intermediate size must be >= 0, got ",
              shared_intermediate);
  LMLAB_CHECK(!bias_in_weights || router == Router::Sigmoid, ConfigError,
              "[moe] moe_router_bias_in_weights needs the sigmoid router (the softmax router has no correction bias)");
}

// ---- router statistics ----

Tensor load_balancing_loss(const RouterStats& s, const std::vector<int64_t>& counts) {
  const std::vector<int64_t>& c = counts.empty() ? s.counts : counts;
  int64_t E = s.prob_mean.numel();
  LMLAB_CHECK(int64_t(c.size()) == E, ShapeError, "[moe] load_balancing_loss: counts has ", c.size(),
              " entries, the router has ", E, " experts");
  int64_t total = 0;
  for (int64_t v : c) total += v;
  LMLAB_CHECK(total > 0, ValueError, "[moe] load_balancing_loss: no routed tokens (counts sum to 0)");
  // f_e counts the K slots of every token: total = T * K assignments.
  std::vector<double> f(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) f[size_t(e)] = double(E) * double(c[size_t(e)]) / double(total);
  Tensor fe = Tensor::from_vector(f).to(s.prob_mean.dtype());
  return sum(mul(s.prob_mean, fe));
}

namespace {
thread_local RouterStatsCollector* g_collector = nullptr;
}

RouterStatsCollector::RouterStatsCollector() : prev_(g_collector) { g_collector = this; }
RouterStatsCollector::~RouterStatsCollector() { g_collector = prev_; }
RouterStatsCollector* RouterStatsCollector::active() { return g_collector; }

Tensor RouterStatsCollector::load_balancing_loss(const std::vector<std::vector<int64_t>>& counts_by_entry) const {
  LMLAB_CHECK(counts_by_entry.empty() || counts_by_entry.size() == stats_.size(), ValueError,
              "[moe] load_balancing_loss: ", counts_by_entry.size(), " counts overrides for ", stats_.size(),
              " recorded router forwards");
  Tensor total;
  for (size_t i = 0; i < stats_.size(); ++i) {
    Tensor l = lmlab::load_balancing_loss(stats_[i], counts_by_entry.empty() ? std::vector<int64_t>{}
                                                                             : counts_by_entry[i]);
    total = total.defined() ? add(total, l.to(total.dtype())) : l;
  }
  return total.defined() ? total : Tensor::scalar(0.0);
}

Tensor RouterStatsCollector::z_loss() const {
  Tensor total;
  for (const auto& s : stats_) total = total.defined() ? add(total, s.z.to(total.dtype())) : s.z;
  return total.defined() ? total : Tensor::scalar(0.0);
}

// ---- routing ----

MoERouting moe_route(const Tensor& logits, const MoEConfig& cfg, const Tensor& selection_bias) {
  LMLAB_CHECK(logits.dim() == 2 && logits.size(1) == cfg.num_experts, ShapeError,
              "[moe] router logits must be [N, ", cfg.num_experts, "], got ", shape_str(logits.shape()));
  MoERouting r;
  r.logits = logits;
  const bool sig = cfg.router == MoEConfig::Router::Sigmoid;
  r.scores = sig ? sigmoid(logits) : softmax(logits, -1);  // [N, E]
  {
    NoGrad ng;  // the choice itself carries no gradient
    Tensor choose = r.scores;
    if (sig && selection_bias.defined()) choose = add(r.scores, selection_bias.to(r.scores.dtype()));
    r.indices = topk(choose, cfg.top_k, -1, true).second;  // [N, K] i64; stable: ties -> lower index
  }
  // [N, K]; with bias_in_weights the biased scores (a constant shift: the gradient still reaches the scores)
  Tensor w = gather(sig && cfg.bias_in_weights && selection_bias.defined()
                        ? add(r.scores, selection_bias.to(r.scores.dtype()))
                        : r.scores,
                    1, r.indices);
  if (cfg.norm_topk_prob) {
    Tensor denom = sum(w, {-1}, true);  // [N, 1]
    // sigmoid scores can all be tiny; softmax top-K sums are at least K / E
    if (sig) denom = add(denom, 1e-20);
    w = div(w, denom);
  }
  if (cfg.routed_scaling_factor != 1.0) w = mul(w, cfg.routed_scaling_factor);
  r.weights = w;
  return r;
}

namespace {

// The N * K assignments sorted by expert (counting sort, stable so each group keeps token order).
struct Grouping {
  std::vector<int64_t> counts, start;  // [E], [E + 1]
  Tensor token, slot;                  // [N * K] i64: the token of each grouped row, its flat (token, k) index
};

Grouping group_by_expert(const Tensor& x, const MoERouting& r, int64_t E) {
  LMLAB_CHECK(x.dim() == 2, ShapeError, "[moe] dispatch input must be [N, C], got ", shape_str(x.shape()));
  const int64_t N = x.size(0);
  LMLAB_CHECK(r.indices.dim() == 2 && r.indices.size(0) == N && r.weights.shape() == r.indices.shape(), ShapeError,
              "[moe] routing for ", N, " tokens expected, got indices ", shape_str(r.indices.shape()),
              " and weights ", shape_str(r.weights.shape()));
  const int64_t K = r.indices.size(1);
  std::vector<int64_t> idx = r.indices.to_vector<int64_t>();
  Grouping g;
  g.counts.assign(static_cast<size_t>(E), 0);
  for (int64_t v : idx) {
    LMLAB_CHECK(v >= 0 && v < E, IndexError, "[moe] expert index ", v, " out of range for ", E, " experts");
    ++g.counts[size_t(v)];
  }
  g.start.assign(size_t(E) + 1, 0);
  for (int64_t e = 0; e < E; ++e) g.start[size_t(e) + 1] = g.start[size_t(e)] + g.counts[size_t(e)];
  std::vector<int64_t> slot(size_t(N * K)), token(size_t(N * K));
  std::vector<int64_t> at(g.start.begin(), g.start.end() - 1);
  for (int64_t a = 0; a < N * K; ++a) {
    int64_t p = at[size_t(idx[size_t(a)])]++;
    slot[size_t(p)] = a;       // flat (token, k) position in weights
    token[size_t(p)] = a / K;  // the token itself
  }
  g.token = Tensor::from_vector(token);
  g.slot = Tensor::from_vector(slot);
  return g;
}

// y [N*K, C] grouped by expert -> [N, C]: weight each row by its gate and add it to its token.
Tensor combine(const Tensor& x, const MoERouting& r, const Grouping& g, Tensor y) {
  const int64_t NK = g.token.numel();
  Tensor w = index_select(r.weights.reshape({NK}), 0, g.slot).unsqueeze(1);  // [N*K, 1]
  y = mul(y, w.to(y.dtype()));
  return index_add(Tensor::zeros(x.shape(), y.dtype()), 0, g.token, y);  // [N, C]
}

// Indices into `used` ordered by decreasing token count (ties by index): the task order for
// parallel_tasks, so the longest jobs start first.
std::vector<size_t> biggest_first(const std::vector<int64_t>& used, const std::vector<int64_t>& counts) {
  std::vector<size_t> order(used.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return counts[size_t(used[a])] > counts[size_t(used[b])];
  });
  return order;
}

// Every expert that received tokens, run on its block of the grouped rows xs [N*K, C], as ONE autograd
// node. Slicing xs per expert through the autograd (narrow) would make each expert's backward return a
// zero-padded [N*K, C] gradient, E of them summed: E times the traffic of the one gradient written
// here block by block. Training path of SparseMoE (f32/f64 weights, not quantized); the backward runs
// the same linear() products as the forward, so bf16 autocast applies to both.
Tensor grouped_swiglu_experts(const Tensor& xs, const Grouping& g, const std::vector<std::shared_ptr<SwiGLUMLP>>& ex) {
  std::vector<int64_t> used;         // experts with tokens, in order
  std::vector<Tensor> inputs{xs};    // xs, then (gate, up, down) weights per used expert
  std::vector<Tensor> saved, ys;     // (gate pre-activation, up, swiglu) per used expert, then xs
  for (size_t e = 0; e < ex.size(); ++e)
    if (g.counts[e] > 0) used.push_back(int64_t(e));  // no tokens: the expert stays out of the graph
  const size_t nu = used.size();
  ys.resize(nu);
  saved.resize(3 * nu);
  // The experts run concurrently, one per thread (parallel_tasks), biggest first: their products are
  // small, and splitting each over every thread costs a synchronisation per op.
  const std::vector<size_t> order = biggest_first(used, g.counts);
  const bool bf16 = autocast_bf16();
  parallel_tasks(int64_t(nu), [&](int64_t t) {
    NoGrad ng;  // per thread: grad mode and autocast are thread-local
    AutocastBF16 ac(bf16);
    const size_t i = order[size_t(t)], e = size_t(used[i]);
    Tensor xe = xs.narrow(0, g.start[e], g.counts[e]);                                          // [n_e, C]
    Tensor gt = linear(xe, ex[e]->gate_proj->weight), up = linear(xe, ex[e]->up_proj->weight);  // [n_e, I]
    Tensor a = swiglu(gt, up);                                                                  // [n_e, I]
    ys[i] = linear(a, ex[e]->down_proj->weight);                                                // [n_e, C]
    saved[3 * i] = gt;
    saved[3 * i + 1] = up;
    saved[3 * i + 2] = a;
  });
  for (int64_t e : used)
    inputs.insert(inputs.end(), {ex[size_t(e)]->gate_proj->weight, ex[size_t(e)]->up_proj->weight,
                                 ex[size_t(e)]->down_proj->weight});
  Tensor y;
  {
    NoGrad ng;
    y = ys.size() == 1 ? ys[0] : concat(ys, 0);  // [N*K, C]
  }
  saved.push_back(xs.detach());
  std::vector<int64_t> start(g.start), counts(g.counts);
  return record(y, "moe_grouped_experts", inputs, std::move(saved),
                [used, order, start, counts, w = std::vector<Tensor>(inputs.begin() + 1, inputs.end())](
                    const Tensor& dy_in, const std::vector<Tensor>& s) {
                  NoGrad ng;
                  const Tensor& xs = s.back();
                  Tensor dy = dy_in.is_contiguous() ? dy_in : dy_in.contiguous();
                  std::vector<Tensor> out(1 + w.size()), dxs(used.size());
                  const bool bf16 = autocast_bf16();
                  parallel_tasks(int64_t(used.size()), [&](int64_t t) {
                    NoGrad ng_task;
                    AutocastBF16 ac(bf16);
                    const size_t i = order[size_t(t)], e = size_t(used[i]);
                    Tensor xe = xs.narrow(0, start[e], counts[e]), dye = dy.narrow(0, start[e], counts[e]);
                    const Tensor &gt = s[3 * i], &up = s[3 * i + 1], &a = s[3 * i + 2];
                    const Tensor &wg = w[3 * i], &wu = w[3 * i + 1], &wd = w[3 * i + 2];
                    out[3 + 3 * i] = linear(dye.transpose(0, 1), a.transpose(0, 1));  // dWd = dy^T a   [C, I]
                    Tensor da = linear(dye, wd.transpose(0, 1)).contiguous();          // dy Wd           [n, I]
                    Tensor dg = Tensor::empty(gt.shape(), gt.dtype()), du = Tensor::empty(up.shape(), up.dtype());
                    if (gt.dtype() == DType::F64)
                      cpu::swiglu_backward<double>(da.to(DType::F64).data<double>(), gt.data<double>(),
                                                   up.data<double>(), dg.data<double>(), du.data<double>(),
                                                   gt.numel());
                    else
                      cpu::swiglu_backward<float>(da.to(DType::F32).data<float>(), gt.data<float>(), up.data<float>(),
                                                  dg.data<float>(), du.data<float>(), gt.numel());
                    Tensor xt = xe.transpose(0, 1);
                    out[1 + 3 * i] = linear(dg.transpose(0, 1), xt);  // dWg = dg^T x  [I, C]
                    out[2 + 3 * i] = linear(du.transpose(0, 1), xt);  // dWu = du^T x  [I, C]
                    dxs[i] = add(linear(dg, wg.transpose(0, 1)), linear(du, wu.transpose(0, 1)));  // [n, C]
                  });
                  out[0] = dxs.size() == 1 ? dxs[0] : concat(dxs, 0);
                  if (out[0].dtype() != xs.dtype()) out[0] = out[0].to(xs.dtype());
                  return out;
                });
}

// Whether SparseMoE can train through grouped_swiglu_experts.
bool grouped_path_applies(const Tensor& x, const std::vector<std::shared_ptr<SwiGLUMLP>>& ex) {
  if (!GradMode::enabled() || reference_mode()) return false;
  if (x.dtype() != DType::F32 && x.dtype() != DType::F64) return false;
  for (const auto& e : ex)
    for (const Linear* l : {e->gate_proj.get(), e->up_proj.get(), e->down_proj.get()})
      if (l->quantized() || l->bias.defined() || l->weight.dtype() != x.dtype()) return false;
  return true;
}

}  // namespace

Tensor moe_dispatch_combine(const Tensor& x, const MoERouting& r, int64_t E, const ExpertFn& expert,
                            std::vector<int64_t>* counts_out) {
  Grouping g = group_by_expert(x, r, E);
  if (counts_out) *counts_out = g.counts;
  if (g.token.numel() == 0) return mul(x, 0.0);  // no tokens: nothing to route
  Tensor xs = index_select(x, 0, g.token);  // [N*K, C], grouped by expert
  std::vector<Tensor> ys;
  for (int64_t e = 0; e < E; ++e) {
    int64_t n = g.counts[size_t(e)];
    if (n == 0) continue;  // an expert without tokens does not enter the graph: its gradient stays empty
    ys.push_back(expert(e, xs.narrow(0, g.start[size_t(e)], n)));  // [n_e, C]
  }
  return combine(x, r, g, ys.size() == 1 ? ys[0] : concat(ys, 0));
}

// ---- modules ----

MoERouter::MoERouter(int64_t hidden, int64_t E, bool with_bias, Generator& gen, double std) {
  Tensor w = Tensor::empty({E, hidden});
  if (!SkipInit::active()) {  // otherwise the values are about to be loaded
    w = Tensor::randn({E, hidden}, gen);
    mul_(w, std);
  }
  weight = register_parameter("weight", w);
  if (with_bias) e_score_correction_bias = register_buffer("e_score_correction_bias", Tensor::zeros({E}));
}

Tensor MoERouter::forward(const Tensor& x) const {
  // Routing decisions are sensitive to rounding: logits in f32 even under bf16 autocast.
  AutocastBF16 off(false);
  DType dt = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  return linear(x.dtype() == dt ? x : x.to(dt), weight.dtype() == dt ? weight : weight.to(dt));
}

SparseMoE::SparseMoE(const MoEConfig& c, Generator& gen, double std, double out_std, int64_t layer)
    : cfg(c), layer_index(layer) {
  cfg.validate();
  gate = register_module("gate", std::make_shared<MoERouter>(c.hidden, c.num_experts,
                                                              c.router == MoEConfig::Router::Sigmoid, gen, std));
  for (int64_t e = 0; e < c.num_experts; ++e)
    experts.push_back(register_module("experts." + std::to_string(e),
                                      c.mixtral_expert_names
                                          ? std::make_shared<SwiGLUMLP>(c.hidden, c.expert_intermediate, gen, std,
                                                                        out_std, "w1", "w3", "w2")
                                          : std::make_shared<SwiGLUMLP>(c.hidden, c.expert_intermediate, gen, std,
                                                                        out_std)));
  if (c.num_shared_experts > 0) {
    int64_t w = (c.shared_intermediate > 0 ? c.shared_intermediate : c.expert_intermediate) * c.num_shared_experts;
    shared_experts = register_module("shared_experts", std::make_shared<SwiGLUMLP>(c.hidden, w, gen, std, out_std));
  }
}

Tensor SparseMoE::forward(const Tensor& x) const {
  const Shape shape = x.shape();
  const int64_t C = cfg.hidden;
  LMLAB_CHECK(x.dim() >= 1 && shape.back() == C, ShapeError, "[moe] input must be [..., ", C, "], got ",
              shape_str(shape));
  Tensor x2 = x.reshape({x.numel() / C, C});  // [N, C]
  MoERouting r = moe_route(gate->forward(x2), cfg, gate->e_score_correction_bias);
  std::vector<int64_t> counts;
  Tensor y;
  if (grouped_path_applies(x2, experts) && x2.size(0) > 0) {
    Grouping g = group_by_expert(x2, r, cfg.num_experts);
    counts = g.counts;
    y = combine(x2, r, g, grouped_swiglu_experts(index_select(x2, 0, g.token), g, experts));
  } else {
    y = moe_dispatch_combine(
        x2, r, cfg.num_experts, [&](int64_t e, const Tensor& xe) { return experts[size_t(e)]->forward(xe); },
        &counts);
  }
  if (y.dtype() != x.dtype()) y = y.to(x.dtype());
  if (shared_experts) y = add(y, shared_experts->forward(x2));
  if (RouterStatsCollector* col = RouterStatsCollector::active()) {
    RouterStats s;
    s.layer = layer_index;
    s.tokens = x2.size(0);
    s.top_k = cfg.top_k;
    s.counts = std::move(counts);
    Tensor p = r.scores;  // [N, E]
    if (cfg.router == MoEConfig::Router::Sigmoid) p = div(p, sum(p, {-1}, true));
    s.prob_mean = mean(p, {0});                                   // [E]
    s.z = mean(pow(logsumexp(r.logits, {-1}), 2.0));              // scalar
    s.logits = r.logits;                                          // [N, E]
    col->record(std::move(s));
  }
  return y.reshape(shape);
}

void SparseMoE::update_selection_bias(const std::vector<int64_t>& counts, double gamma) {
  LMLAB_CHECK(gate->e_score_correction_bias.defined(), ValueError,
              "[moe] update_selection_bias needs the sigmoid router (this layer routes with softmax)");
  const int64_t E = cfg.num_experts;
  LMLAB_CHECK(int64_t(counts.size()) == E, ShapeError, "[moe] update_selection_bias: counts has ", counts.size(),
              " entries, expected ", E);
  double mean_load = 0;
  for (int64_t v : counts) mean_load += double(v) / double(E);
  std::vector<float> step(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    double d = mean_load - double(counts[size_t(e)]);
    step[size_t(e)] = float(gamma * double((d > 0) - (d < 0)));
  }
  NoGrad ng;
  add_(gate->e_score_correction_bias, Tensor::from_vector(step));
}

}  // namespace lmlab
