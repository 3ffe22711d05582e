// Sparse MoE (nn/moe.h) against the spec's unit tests (/work/shared/papers/moe.md): gate weights sum to 1
// with norm_topk_prob, L_aux = 1 under uniform routing and E under full collapse, no gradient for experts
// that got no tokens, deterministic ties, output equal to a naive per-token dense reference, float64
// finite-difference gradcheck of the grouped dispatch, aux-free bias balancing, buffers and validation.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"
#include "lmlab/nn/moe.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;

namespace {

MoEConfig small(int64_t E = 4, int64_t K = 2) {
  MoEConfig c;
  c.hidden = 8;
  c.num_experts = E;
  c.top_k = K;
  c.expert_intermediate = 6;
  c.norm_topk_prob = true;
  return c;
}

// Sets the router weight so token t (x = one-hot row t of an identity-like input) gets logits row
// `logits[t]`: with x = I_C and W^T's first rows = logits, x W^T = logits.
void set_router(SparseMoE& m, const std::vector<std::vector<double>>& logits_by_channel) {
  NoGrad ng;
  Tensor w = Tensor::zeros({m.cfg.num_experts, m.cfg.hidden});
  for (size_t c = 0; c < logits_by_channel.size(); ++c)
    for (size_t e = 0; e < logits_by_channel[c].size(); ++e)
      copy_(w.narrow(0, int64_t(e), 1).narrow(1, int64_t(c), 1), Tensor::full({1, 1}, logits_by_channel[c][e]));
  copy_(m.gate->weight, w);
}

// Counts as "a b c": GCC 12.2 at -O3 -march=native (AVX-512) miscompiled a std::vector<int64_t>{6, 6, 0, 0}
// literal in this file into {6, 6, 6, 6} (correct at -O2, or without AVX-512); strings sidestep it.
std::string joined(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
  return s;
}

Tensor eye_rows(int64_t n, int64_t C, int64_t period = 0) {  // [n, C], row t = e_{t mod period}
  if (period == 0) period = C;
  Tensor x = Tensor::zeros({n, C});
  for (int64_t t = 0; t < n; ++t) copy_(x.narrow(0, t, 1).narrow(1, t % period, 1), Tensor::ones({1, 1}));
  return x;
}

// Naive per-token dense reference: y_t = sum_k w_tk * SwiGLU_{e_tk}(x_t) (+ shared(x_t)), one token at a time.
Tensor naive_moe(const SparseMoE& m, const Tensor& x) {
  NoGrad ng;
  int64_t N = x.size(0);
  Tensor logits = m.gate->forward(x);
  MoERouting r = moe_route(logits, m.cfg, m.gate->e_score_correction_bias);
  auto idx = r.indices.to_vector<int64_t>();
  auto w = r.weights.to_vector<double>();
  std::vector<Tensor> rows;
  for (int64_t t = 0; t < N; ++t) {
    Tensor xt = x.narrow(0, t, 1);
    Tensor y = Tensor::zeros({1, m.cfg.hidden});
    for (int64_t k = 0; k < m.cfg.top_k; ++k) {
      const SwiGLUMLP& ex = *m.experts[size_t(idx[size_t(t * m.cfg.top_k + k)])];
      Tensor h = mul(silu(linear(xt, ex.gate_proj->weight)), linear(xt, ex.up_proj->weight));
      y = add(y, mul(linear(h, ex.down_proj->weight), w[size_t(t * m.cfg.top_k + k)]));
    }
    if (m.shared_experts) y = add(y, m.shared_experts->forward(xt));
    rows.push_back(y);
  }
  return concat(rows, 0);
}

}  // namespace

TEST(MoE, ParameterNamesFollowQwen3MoeAndBufferIsNotAParameter) {
  Generator gen(1);
  MoEConfig c = small();
  c.router = MoEConfig::Router::Sigmoid;
  c.num_shared_experts = 2;
  SparseMoE m(c, gen, 0.1, 0.05);
  auto np = m.named_parameters();
  std::vector<std::string> names;
  for (auto& [n, t] : np) names.push_back(n);
  EXPECT_EQ(names.front(), "gate.weight");
  EXPECT_NE(std::find(names.begin(), names.end(), "experts.3.down_proj.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "shared_experts.up_proj.weight"), names.end());
  EXPECT_EQ(m.shared_experts->up_proj->weight.size(0), 2 * c.expert_intermediate);
  EXPECT_EQ(std::find(names.begin(), names.end(), "gate.e_score_correction_bias"), names.end());
  auto sd = m.state_dict();
  ASSERT_TRUE(sd.count("gate.e_score_correction_bias"));
  EXPECT_FALSE(sd.at("gate.e_score_correction_bias").requires_grad());
  // the buffer round-trips through load_state_dict (strict)
  sd["gate.e_score_correction_bias"] = Tensor::from_vector(std::vector<float>{0.5f, -1.f, 0.f, 2.f});
  m.load_state_dict(sd, true);
  EXPECT_EQ(m.gate->e_score_correction_bias.to_vector<float>(), (std::vector<float>{0.5f, -1.f, 0.f, 2.f}));
}

TEST(MoE, GateWeightsSumToOneWithNormTopkProb) {
  Generator gen(2);
  for (auto router : {MoEConfig::Router::Softmax, MoEConfig::Router::Sigmoid}) {
    MoEConfig c = small(6, 3);
    c.router = router;
    Tensor logits = Tensor::randn({11, 6}, gen);
    MoERouting r = moe_route(logits, c);
    Tensor s = sum(r.weights, {-1});
    for (double v : s.to_vector<double>()) EXPECT_NEAR(v, 1.0, 1e-6);
    c.routed_scaling_factor = 2.5;
    Tensor s2 = sum(moe_route(logits, c).weights, {-1});
    for (double v : s2.to_vector<double>()) EXPECT_NEAR(v, 2.5, 1e-5);
    // without renormalisation the softmax weights are the raw top-k probabilities (sum < 1)
    c.routed_scaling_factor = 1.0;
    c.norm_topk_prob = false;
    if (router == MoEConfig::Router::Softmax) {
      Tensor raw = moe_route(logits, c).weights;
      for (double v : sum(raw, {-1}).to_vector<double>()) EXPECT_LT(v, 1.0);
    }
  }
}

TEST(MoE, TiesGoToTheLowerExpertIndexDeterministically) {
  MoEConfig c = small(5, 2);
  Tensor logits = Tensor::zeros({4, 5});  // every expert equally likely
  MoERouting a = moe_route(logits, c), b = moe_route(logits, c);
  EXPECT_EQ(a.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(a.indices.to_vector<int64_t>(), b.indices.to_vector<int64_t>());
  // a partial tie: experts 1 and 3 share the top score -> 1 first, then 3
  Tensor l2 = Tensor::from_vector(std::vector<float>{0, 2, 1, 2, 0}, {1, 5});
  EXPECT_EQ(moe_route(l2, c).indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3}));
}

TEST(MoE, BalanceLossIsOneWhenUniformAndEUnderCollapse) {
  Generator gen(3);
  MoEConfig c = small(4, 1);
  SparseMoE m(c, gen, 0.1, 0.1);
  // uniform: token t is sent (with probability ~1) to expert t mod 4, 8 tokens -> 2 per expert
  set_router(m, {{40, 0, 0, 0}, {0, 40, 0, 0}, {0, 0, 40, 0}, {0, 0, 0, 40}});
  {
    RouterStatsCollector rs;
    m.forward(eye_rows(8, c.hidden, 4));
    ASSERT_EQ(rs.stats().size(), 1u);
    EXPECT_EQ(joined(rs.stats()[0].counts), "2 2 2 2");
    EXPECT_NEAR(rs.load_balancing_loss().item(), 1.0, 1e-6);
  }
  // zero logits: uniform probabilities give L = 1 whatever the (tie-broken) counts are
  set_router(m, {});
  {
    RouterStatsCollector rs;
    m.forward(eye_rows(8, c.hidden));
    EXPECT_EQ(joined(rs.stats()[0].counts), "8 0 0 0");
    EXPECT_NEAR(rs.load_balancing_loss().item(), 1.0, 1e-6);
  }
  // collapse: every token to expert 2 with probability ~1 -> L = E
  set_router(m, std::vector<std::vector<double>>(size_t(c.hidden), {0, 0, 50, 0}));
  {
    RouterStatsCollector rs;
    m.forward(eye_rows(8, c.hidden));
    EXPECT_EQ(joined(rs.stats()[0].counts), "0 0 8 0");
    EXPECT_NEAR(rs.load_balancing_loss().item(), 4.0, 1e-6);
    // a global-batch override of the counts: f uniform -> L = sum_e P_e = 1
    EXPECT_NEAR(rs.load_balancing_loss({{5, 5, 5, 5}}).item(), 1.0, 1e-6);
  }
  // f counts the K slots: top-2 with uniform probabilities still gives 1, not 2
  MoEConfig c2 = small(4, 2);
  SparseMoE m2(c2, gen, 0.1, 0.1);
  set_router(m2, {});
  RouterStatsCollector rs;
  m2.forward(eye_rows(6, c2.hidden));
  EXPECT_EQ(joined(rs.stats()[0].counts), "6 6 0 0");
  EXPECT_NEAR(rs.load_balancing_loss().item(), 1.0, 1e-6);
}

TEST(MoE, NothingIsRecordedWithoutACollectorAndCollectorsNest) {
  Generator gen(4);
  SparseMoE m(small(), gen, 0.1, 0.1, /*layer=*/7);
  Tensor x = Tensor::randn({5, 8}, gen);
  EXPECT_EQ(RouterStatsCollector::active(), nullptr);
  m.forward(x);
  RouterStatsCollector outer;
  m.forward(x);
  {
    RouterStatsCollector inner;
    m.forward(x);
    m.forward(x);
    EXPECT_EQ(inner.stats().size(), 2u);
    EXPECT_EQ(inner.stats()[0].layer, 7);
    EXPECT_EQ(inner.stats()[0].tokens, 5);
  }
  EXPECT_EQ(outer.stats().size(), 1u);
  EXPECT_EQ(RouterStatsCollector::active(), &outer);
  // z-loss: mean over tokens of logsumexp(logits)^2
  auto& s = outer.stats()[0];
  double want = 0;
  for (double v : logsumexp(s.logits, {-1}).to_vector<double>()) want += v * v / 5.0;
  EXPECT_NEAR(outer.z_loss().item(), want, 1e-5);
}

TEST(MoE, ExpertsWithoutTokensGetNoGradientAndTheRouterDoes) {
  Generator gen(5);
  MoEConfig c = small(4, 1);
  c.norm_topk_prob = false;  // top-1 renormalised is a constant 1: the router would get no gradient
  SparseMoE m(c, gen, 0.1, 0.1);
  set_router(m, {{3, 0, 1, 0}, {2, 0, 1.5, 0}, {2.5, 0, 1, 0}, {3, 0, 2, 0}});  // expert 0 wins every token
  Tensor x = eye_rows(4, c.hidden);
  RouterStatsCollector rs;
  Tensor y = m.forward(x);
  ASSERT_EQ(joined(rs.stats()[0].counts), "4 0 0 0");
  sum(mul(y, Tensor::randn(y.shape(), gen))).backward();
  for (int64_t e = 0; e < 4; ++e) {
    for (auto& [n, p] : m.experts[size_t(e)]->named_parameters()) {
      Tensor g = p.grad();
      double mx = g.defined() ? max(abs(g)).item() : 0.0;
      if (e == 0) EXPECT_GT(mx, 0.0) << "expert 0 " << n;
      else EXPECT_EQ(mx, 0.0) << "expert " << e << " " << n;
    }
  }
  ASSERT_TRUE(m.gate->weight.grad().defined());
  EXPECT_GT(max(abs(m.gate->weight.grad())).item(), 0.0);
}

TEST(MoE, OutputEqualsNaivePerTokenReference) {
  Generator gen(6);
  for (auto router : {MoEConfig::Router::Softmax, MoEConfig::Router::Sigmoid}) {
    for (int64_t shared : {0, 1}) {
      MoEConfig c = small(5, 2);
      c.router = router;
      c.num_shared_experts = shared;
      c.routed_scaling_factor = router == MoEConfig::Router::Sigmoid ? 2.0 : 1.0;
      SparseMoE m(c, gen, 0.3, 0.3);
      if (router == MoEConfig::Router::Sigmoid) {
        NoGrad ng;
        copy_(m.gate->e_score_correction_bias, Tensor::from_vector(std::vector<float>{0.3f, -0.2f, 0.f, 0.5f, -0.4f}));
      }
      Tensor x = Tensor::randn({3, 7, c.hidden}, gen);
      Tensor want = naive_moe(m, x.reshape({21, c.hidden})).reshape({3, 7, c.hidden});
      for (bool grad_mode : {false, true}) {  // inference uses each expert's fused gate/up product
        std::optional<NoGrad> ng;
        if (!grad_mode) ng.emplace();
        CheckResult r = compare("moe", m.forward(x), want, 1e-6, 1e-5);
        EXPECT_TRUE(r.ok) << r.message;
      }
    }
  }
}

TEST(MoE, SelectionBiasChoosesButDoesNotWeight) {
  MoEConfig c = small(4, 2);
  c.router = MoEConfig::Router::Sigmoid;
  Tensor logits = Tensor::from_vector(std::vector<float>{2, 1, 0, -1}, {1, 4});
  MoERouting plain = moe_route(logits, c);
  EXPECT_EQ(plain.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  Tensor bias = Tensor::from_vector(std::vector<float>{0, 0, 0, 5});
  MoERouting biased = moe_route(logits, c, bias);
  EXPECT_EQ(biased.indices.to_vector<int64_t>(), (std::vector<int64_t>{3, 0}));
  double s3 = 1 / (1 + std::exp(1.0)), s0 = 1 / (1 + std::exp(-2.0));
  auto w = biased.weights.to_vector<double>();
  EXPECT_NEAR(w[0], s3 / (s0 + s3), 1e-6);  // the unbiased score, renormalised
  EXPECT_NEAR(w[1], s0 / (s0 + s3), 1e-6);

  // aux-loss-free update: overloaded experts go down by gamma, underloaded ones up
  Generator gen(7);
  SparseMoE m(c, gen, 0.1, 0.1);
  m.update_selection_bias({10, 2, 4, 0}, 0.01);  // mean load 4
  auto b = m.gate->e_score_correction_bias.to_vector<double>();
  EXPECT_NEAR(b[0], -0.01, 1e-7);
  EXPECT_NEAR(b[1], 0.01, 1e-7);
  EXPECT_NEAR(b[2], 0.0, 1e-7);
  EXPECT_NEAR(b[3], 0.01, 1e-7);
  EXPECT_FALSE(m.gate->e_score_correction_bias.grad().defined());
  SparseMoE soft(small(), gen, 0.1, 0.1);
  expect_error<ValueError>([&] { soft.update_selection_bias({1, 1, 1, 1}, 0.01); }, "needs the sigmoid router");
  expect_error<ShapeError>([&] { m.update_selection_bias({1, 1}, 0.01); }, "counts has 2 entries, expected 4");
}

// Float64 central differences through routing + grouped dispatch + combine, every input: tokens, router,
// and each expert's three matrices (all five experts, four of which receive tokens).
TEST(MoE, GradcheckFloat64) {
  Generator gen(8);
  const int64_t N = 6, C = 5, I = 3, E = 5;
  for (auto router : {MoEConfig::Router::Softmax, MoEConfig::Router::Sigmoid}) {
    MoEConfig c;
    c.hidden = C;
    c.num_experts = E;
    c.top_k = 2;
    c.expert_intermediate = I;
    c.norm_topk_prob = true;
    c.router = router;
    std::vector<Tensor> in = {Tensor::randn({N, C}, gen, DType::F64), Tensor::randn({E, C}, gen, DType::F64)};
    for (int64_t e = 0; e < E; ++e) {
      in.push_back(mul(Tensor::randn({I, C}, gen, DType::F64), 0.7));
      in.push_back(mul(Tensor::randn({I, C}, gen, DType::F64), 0.7));
      in.push_back(mul(Tensor::randn({C, I}, gen, DType::F64), 0.7));
    }
    auto f = [&](const std::vector<Tensor>& a) {
      MoERouting r = moe_route(linear(a[0], a[1]), c);
      return moe_dispatch_combine(a[0], r, E, [&](int64_t e, const Tensor& xe) {
        const Tensor& g = a[size_t(2 + 3 * e)];
        const Tensor& u = a[size_t(3 + 3 * e)];
        const Tensor& d = a[size_t(4 + 3 * e)];
        return linear(swiglu(linear(xe, g), linear(xe, u)), d);
      });
    };
    GradcheckOptions o;
    o.max_elems = 30;
    CheckResult r = gradcheck(f, in, o);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

TEST(MoE, ValidationNamesTheField) {
  Generator gen(9);
  MoEConfig c = small(4, 5);
  expect_error<ConfigError>([&] { SparseMoE m(c, gen, 0.1, 0.1); },
                            "num_experts_per_tok (5) must not exceed num_experts (4)");
  c.top_k = 0;
  expect_error<ConfigError>([&] { SparseMoE m(c, gen, 0.1, 0.1); }, "num_experts_per_tok must be positive");
  c = small();
  c.expert_intermediate = 0;
  expect_error<ConfigError>([&] { SparseMoE m(c, gen, 0.1, 0.1); }, "moe_intermediate_size must be positive");
  SparseMoE m(small(), gen, 0.1, 0.1);
  expect_error<ShapeError>([&] { m.forward(Tensor::zeros({2, 3})); }, "[moe] input must be [..., 8], got [2, 3]");
  expect_error<ShapeError>([&] { moe_route(Tensor::zeros({2, 3}), small()); }, "router logits must be [N, 4]");
}
