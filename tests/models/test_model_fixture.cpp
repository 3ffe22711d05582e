// Model-level parity with an independent implementation (tools/fixtures/tiny_llama_model.py, plain
// PyTorch in float64): logits, loss and every parameter gradient of a tiny LlamaForCausalLM with HF
// parameter names, then a pinned 10-step AdamW loss trajectory (llm.c's test_gpt2 pattern).
// lmlab runs in f32, so tolerances are f32-level.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "lmlab/models/transformer.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/train/optim.h"

using namespace lmlab;

namespace {
const std::string kFixture = std::string(LMLAB_FIXTURE_DIR) + "/tiny_llama_model.safetensors";
constexpr double kAtol = 2e-5, kRtol = 2e-4;  // f32 forward/backward against a float64 reference
}  // namespace

TEST(ModelFixture, LogitsLossGradsAndTrajectoryMatchPyTorch) {
  ASSERT_TRUE(std::filesystem::exists(kFixture)) << "missing " << kFixture
                                                 << "; regenerate with: python3 tools/fixtures/tiny_llama_model.py";
  SafetensorsFile f = SafetensorsFile::open(kFixture);
  ASSERT_EQ(f.metadata().at("format_version"), "1") << "regenerate with: python3 tools/fixtures/tiny_llama_model.py";
  TransformerConfig cfg = TransformerConfig::from_json(f.metadata().at("config"), kFixture + ": config");
  Transformer m(cfg, 0);
  std::map<std::string, Tensor> sd;
  for (const auto& n : f.names())
    if (n.rfind("param.", 0) == 0) sd[n.substr(6)] = f.get(n);
  m.load_state_dict(sd, true);  // strict: the names are exactly HF's
  Tensor ids = f.get("ids"), targets = f.get("targets");

  Tensor logits;
  {
    NoGrad ng;
    logits = m.forward(ids);
  }
  auto rl = compare("logits", logits, f.get("logits"), kAtol, kRtol);
  EXPECT_TRUE(rl.ok) << rl.message;
  Tensor loss = causal_lm_loss(m, ids, targets);
  EXPECT_NEAR(loss.item(), f.get("loss").item(), 1e-5);
  loss.backward();
  int checked = 0;
  for (auto& [name, p] : m.named_parameters()) {
    auto r = compare("grad " + name, p.grad(), f.get("grad." + name), kAtol, kRtol);
    EXPECT_TRUE(r.ok) << r.message;
    ++checked;
  }
  EXPECT_EQ(checked, 21);  // embed + 2 x 9 per block + norm + lm_head

  // 10 AdamW steps on the same batch (torch.optim.AdamW, one group: decay on every parameter)
  auto ad = nlohmann::json::parse(f.metadata().at("adamw"));
  m.zero_grad();
  AdamWOptions o;
  o.lr = ad["lr"];
  o.beta1 = ad["betas"][0];
  o.beta2 = ad["betas"][1];
  o.eps = ad["eps"];
  o.weight_decay = ad["weight_decay"];
  AdamW opt(m.parameters(), o);
  auto traj = f.get("trajectory").to_vector<double>();
  for (size_t s = 0; s < traj.size(); ++s) {
    Tensor l = causal_lm_loss(m, ids, targets);
    EXPECT_NEAR(l.item(), traj[s], 2e-4 * std::max(1.0, std::abs(traj[s]))) << "step " << s;
    l.backward();
    opt.step();
    opt.zero_grad();
  }
}
