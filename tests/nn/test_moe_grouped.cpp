// SparseMoE trains through one grouped autograd node for all experts (nn/moe.cpp, for speed); its
// output and every gradient (tokens, router, each expert's three matrices, shared expert) must equal
// those of the plain per-expert path (moe_dispatch_combine with each expert's forward), also under
// bf16 autocast, and experts without tokens must still get no gradient.
#include <gtest/gtest.h>

#include <map>

#include "lmlab/autograd/gradcheck.h"
#include "lmlab/lmlab.h"
#include "lmlab/nn/moe.h"
#include "lmlab/ops/matmul.h"

using namespace lmlab;

namespace {

Tensor per_expert_forward(const SparseMoE& m, const Tensor& x2) {
  MoERouting r = moe_route(m.gate->forward(x2), m.cfg, m.gate->e_score_correction_bias);
  Tensor y = moe_dispatch_combine(x2, r, m.cfg.num_experts,
                                  [&](int64_t e, const Tensor& xe) { return m.experts[size_t(e)]->forward(xe); });
  if (m.shared_experts) y = add(y, m.shared_experts->forward(x2));
  return y;
}

// Output and the gradients of x and every parameter, for upstream gradient r.
std::map<std::string, Tensor> run(SparseMoE& m, const Tensor& x, const Tensor& r, bool grouped) {
  m.zero_grad();
  Tensor xg = x.detach();
  xg.set_requires_grad(true);
  Tensor y = grouped ? m.forward(xg) : per_expert_forward(m, xg);
  sum(mul(y, r)).backward();
  std::map<std::string, Tensor> out = {{"y", y.detach()}, {"dx", xg.grad()}};
  for (auto& [n, p] : m.named_parameters()) out[n] = p.grad();
  return out;
}

}  // namespace

TEST(MoEGrouped, MatchesPerExpertPathWithGradients) {
  Generator gen(11);
  for (auto router : {MoEConfig::Router::Softmax, MoEConfig::Router::Sigmoid}) {
    for (int64_t shared : {0, 1}) {
      for (bool bf16 : {false, true}) {
        MoEConfig c;
        c.hidden = 16;
        c.num_experts = 6;
        c.top_k = 2;
        c.expert_intermediate = 8;
        c.norm_topk_prob = true;
        c.router = router;
        c.num_shared_experts = shared;
        SparseMoE m(c, gen, 0.3, 0.3);
        Tensor x = Tensor::randn({37, c.hidden}, gen), r = Tensor::randn({37, c.hidden}, gen);
        AutocastBF16 ac(bf16);
        auto want = run(m, x, r, false), got = run(m, x, r, true);
        // bf16 products round differently in the two association orders
        double tol = bf16 ? 2e-2 : 1e-5;
        for (auto& [n, t] : want) {
          SCOPED_TRACE(n + (bf16 ? " bf16" : " f32"));
          ASSERT_EQ(t.defined(), got[n].defined());
          if (!t.defined()) continue;
          CheckResult cr = compare(n, got[n], t, tol, tol);
          EXPECT_TRUE(cr.ok) << cr.message;
        }
      }
    }
  }
}

TEST(MoEGrouped, ExpertsWithoutTokensStayOutOfTheGraph) {
  Generator gen(12);
  MoEConfig c;
  c.hidden = 8;
  c.num_experts = 4;
  c.top_k = 1;
  c.expert_intermediate = 4;
  SparseMoE m(c, gen, 0.3, 0.3);
  {
    NoGrad ng;
    // expert 2 wins every token: a large positive weight on a feature every token has
    Tensor w = Tensor::zeros({4, 8});
    for (int64_t j = 0; j < 8; ++j) w.data<float>()[2 * 8 + j] = 5.0f;
    copy_(m.gate->weight, w);
  }
  Tensor x = add(mul(Tensor::rand({10, 8}, gen), 0.5), 0.5);  // positive features
  RouterStatsCollector rs;
  sum(m.forward(x)).backward();
  ASSERT_EQ(rs.stats()[0].counts, (std::vector<int64_t>{0, 0, 10, 0}));
  for (int64_t e = 0; e < 4; ++e)
    for (auto& [n, p] : m.experts[size_t(e)]->named_parameters())
      EXPECT_EQ(p.grad().defined(), e == 2) << "expert " << e << " " << n;
}
