// Sparse mixture-of-experts: routing, grouped dispatch/combine, router statistics and the module.
#include "lmlab/nn/moe.h"

#include <cmath>

#include "lmlab/core/node.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/index.h"
#include "lmlab/ops/join.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/reduce.h"
#include "lmlab/ops/softmax.h"
#include "lmlab/ops/sort.h"

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
  Tensor w = gather(r.scores, 1, r.indices);  // [N, K]
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

Tensor moe_dispatch_combine(const Tensor& x, const MoERouting& r, int64_t E, const ExpertFn& expert,
                            std::vector<int64_t>* counts_out) {
  LMLAB_CHECK(x.dim() == 2, ShapeError, "[moe] dispatch input must be [N, C], got ", shape_str(x.shape()));
  const int64_t N = x.size(0), K = r.indices.size(1);
  LMLAB_CHECK(r.indices.dim() == 2 && r.indices.size(0) == N && r.weights.shape() == r.indices.shape(), ShapeError,
              "[moe] routing for ", N, " tokens expected, got indices ", shape_str(r.indices.shape()),
              " and weights ", shape_str(r.weights.shape()));
  // Counting sort of the N * K assignments by expert, stable so each group keeps token order.
  std::vector<int64_t> idx = r.indices.to_vector<int64_t>();
  std::vector<int64_t> counts(static_cast<size_t>(E), 0);
  for (int64_t v : idx) {
    LMLAB_CHECK(v >= 0 && v < E, IndexError, "[moe] expert index ", v, " out of range for ", E, " experts");
    ++counts[size_t(v)];
  }
  std::vector<int64_t> start(size_t(E) + 1, 0);
  for (int64_t e = 0; e < E; ++e) start[size_t(e) + 1] = start[size_t(e)] + counts[size_t(e)];
  std::vector<int64_t> slot(size_t(N * K)), token(size_t(N * K));
  {
    std::vector<int64_t> at(start.begin(), start.end() - 1);
    for (int64_t a = 0; a < N * K; ++a) {
      int64_t p = at[size_t(idx[size_t(a)])]++;
      slot[size_t(p)] = a;       // flat (token, k) position in weights
      token[size_t(p)] = a / K;  // the token itself
    }
  }
  if (counts_out) *counts_out = counts;
  if (N * K == 0) return mul(x, 0.0);  // no tokens: nothing to route
  Tensor tok = Tensor::from_vector(token), slt = Tensor::from_vector(slot);
  Tensor xs = index_select(x, 0, tok);  // [N*K, C], grouped by expert
  std::vector<Tensor> ys;
  for (int64_t e = 0; e < E; ++e) {
    int64_t n = counts[size_t(e)];
    if (n == 0) continue;  // an expert without tokens does not enter the graph: its gradient stays empty
    ys.push_back(expert(e, xs.narrow(0, start[size_t(e)], n)));  // [n_e, C]
  }
  Tensor y = ys.size() == 1 ? ys[0] : concat(ys, 0);  // [N*K, C]
  Tensor w = index_select(r.weights.reshape({N * K}), 0, slt).unsqueeze(1);  // [N*K, 1]
  y = mul(y, w.to(y.dtype()));
  return index_add(Tensor::zeros(x.shape(), y.dtype()), 0, tok, y);  // [N, C]
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
                                      std::make_shared<SwiGLUMLP>(c.hidden, c.expert_intermediate, gen, std, out_std)));
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
  Tensor y = moe_dispatch_combine(
      x2, r, cfg.num_experts, [&](int64_t e, const Tensor& xe) { return experts[size_t(e)]->forward(xe); }, &counts);
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
