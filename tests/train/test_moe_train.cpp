// Training sparse MoE models (spec: /work/shared/papers/moe.md): the balance loss spreads the load that
// plain training concentrates, aux-loss-free bias updates do the same for sigmoid routers, a resumed
// sigmoid-router run (selection biases in the checkpoint) reproduces an uninterrupted one bit for
// bit, and a non-finite router logit stops training with a message naming the layer and the step.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lmlab/data/token_shard.h"
#include "lmlab/lmlab.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/train/checkpoint.h"
#include "lmlab/train/trainer.h"
#include "tests/test_util.h"

using namespace lmlab;
namespace fs = std::filesystem;

namespace {

void make_data(const std::string& path) {
  std::vector<uint32_t> ids(20000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint32_t((i * i + 7 * i) % 97);  // learnable structure
  write_token_shard(path, ids, 97);
}

TrainConfig moe_config(const test::TempDir& dir, const std::string& scoring = "softmax") {
  TrainConfig c;
  c.model.architecture = "Qwen3MoeForCausalLM";
  c.model.vocab_size = 97;
  c.model.hidden_size = 32;
  c.model.num_hidden_layers = 2;
  c.model.num_attention_heads = 4;
  c.model.num_key_value_heads = 2;
  c.model.max_position_embeddings = 32;
  c.model.num_experts = 8;
  c.model.num_experts_per_tok = 2;
  c.model.moe_intermediate_size = 16;
  c.model.norm_topk_prob = true;
  c.model.scoring_func = scoring;
  c.train_data = dir / "train.tok";
  if (!fs::exists(c.train_data)) make_data(c.train_data);
  c.batch_size = 4;
  c.context = 32;
  c.steps = 12;
  c.warmup = 2;
  c.lr = 3e-3;
  c.eval_every = 0;
  c.ckpt_every = 0;
  c.moe_aux_loss_coef = 0;
  c.moe_bias_update_rate = 0;
  c.out_dir = dir / "run";
  return c;
}

// Mean over layers of the coefficient of variation of the loads over the last `window` steps.
double late_cv(TrainConfig c, int64_t steps, int64_t window) {
  c.steps = steps;
  Trainer tr(c);
  while (tr.step() < steps) {
    tr.train_step();
    if (tr.step() == steps - window) tr.moe_stats(true);
  }
  MoEStatsInfo info = tr.moe_stats(false);
  EXPECT_EQ(info.steps, window);
  double cv = 0;
  for (const auto& l : info.layers) cv += l.cv / double(info.layers.size());
  return cv;
}

}  // namespace

TEST(MoETrain, ConfigFieldsRoundTripAndDefaultAlpha) {
  test::TempDir dir("lmlab_moe_cfg");
  TrainConfig c = moe_config(dir);
  c.moe_aux_loss_coef = -1;
  EXPECT_EQ(c.moe_aux_coef(), 0.0);  // HF: the aux loss is added only with output_router_logits
  c.model.output_router_logits = true;
  EXPECT_DOUBLE_EQ(c.moe_aux_coef(), c.model.router_aux_loss_coef);
  c.moe_aux_loss_coef = 0.02;
  c.moe_z_loss_coef = 1e-3;
  c.moe_bias_update_rate = 5e-3;
  TrainConfig r = TrainConfig::from_json(c.to_json());
  EXPECT_DOUBLE_EQ(r.moe_aux_coef(), 0.02);
  EXPECT_DOUBLE_EQ(r.moe_z_loss_coef, 1e-3);
  EXPECT_DOUBLE_EQ(r.moe_bias_update_rate, 5e-3);
  test::expect_error<ConfigError>([&] { TrainConfig::from_json(R"({"train_data": "x", "moe_z_loss_coef": -1})"); },
                                  "moe_z_loss_coef");
}

// Counts cover every micro-batch of a step: B * T * grad_accum tokens, K slots each.
TEST(MoETrain, StepCountsSpanTheAccumulatedBatch) {
  test::TempDir dir("lmlab_moe_counts");
  TrainConfig c = moe_config(dir);
  c.grad_accum = 3;
  c.moe_aux_loss_coef = 0.01;
  c.moe_z_loss_coef = 1e-3;
  Trainer tr(c);
  ASSERT_TRUE(tr.is_moe());
  tr.train_step();
  ASSERT_EQ(tr.moe_step_counts().size(), 2u);
  for (const auto& counts : tr.moe_step_counts()) {
    int64_t total = 0;
    for (int64_t v : counts) total += v;
    EXPECT_EQ(total, c.batch_size * c.context * c.grad_accum * 2);
  }
  MoEStatsInfo info = tr.moe_stats(true);
  EXPECT_EQ(info.steps, 1);
  // E * sum f P is at least ~1 per layer (exactly 1 at perfect balance) and at most E.
  EXPECT_GT(info.aux_loss, 1.9);
  EXPECT_LT(info.aux_loss, 16.0);
  EXPECT_GT(info.z_loss, 0.0);
  EXPECT_EQ(tr.moe_stats(false).steps, 0);  // the window was reset
}

// Without balancing the router concentrates the load (rich get richer); the balance loss keeps it
// spread. Both runs see the same data and initialisation.
TEST(MoETrain, AuxLossReducesImbalance) {
  test::TempDir dir("lmlab_moe_aux");
  TrainConfig c = moe_config(dir);
  c.lr = 1e-2;
  double none = late_cv(c, 60, 20);
  c.moe_aux_loss_coef = 0.1;
  double aux = late_cv(c, 60, 20);
  EXPECT_LT(aux, 0.6 * none) << "CV of expert loads: no balancing " << none << ", aux loss " << aux;
}

// The aux-loss-free bias update (sigmoid router) also spreads the load, without any extra loss.
TEST(MoETrain, SelectionBiasUpdatesReduceImbalance) {
  test::TempDir dir("lmlab_moe_auxfree");
  TrainConfig c = moe_config(dir, "sigmoid");
  c.lr = 1e-2;
  double none = late_cv(c, 60, 20);
  c.moe_bias_update_rate = 1e-2;
  double biased = late_cv(c, 60, 20);
  EXPECT_LT(biased, 0.6 * none) << "CV of expert loads: no balancing " << none << ", bias updates " << biased;
}

// Stop (checkpoint) after 5 steps, resume in a new Trainer: the remaining losses and the final
// selection biases equal those of an uninterrupted run exactly.
TEST(MoETrain, SigmoidRouterResumeIsExact) {
  test::TempDir dir("lmlab_moe_resume");
  TrainConfig c = moe_config(dir, "sigmoid");
  c.moe_bias_update_rate = 1e-2;
  c.moe_aux_loss_coef = 1e-2;
  c.moe_z_loss_coef = 1e-3;
  c.grad_accum = 2;
  auto biases = [](Trainer& tr) {
    std::vector<float> out;
    for (auto& [n, b] : tr.model().named_buffers())
      for (float v : b.to_vector<float>()) out.push_back(v);
    return out;
  };
  c.out_dir = dir / "ref";
  Trainer ref(c);
  ref.run();
  std::vector<float> ref_bias = biases(ref);
  ASSERT_EQ(ref_bias.size(), 16u);  // 2 layers x 8 experts
  bool moved = false;
  for (float v : ref_bias) moved |= v != 0.0f;
  EXPECT_TRUE(moved) << "selection biases were never updated";

  c.out_dir = dir / "split";
  {
    Trainer first(c);
    first.on_step = [](const StepInfo& s) {
      if (s.step == 5) Trainer::request_stop();
    };
    EXPECT_FALSE(first.run());
    Trainer::clear_stop();
    EXPECT_EQ(first.step(), 5);
  }
  Trainer second(c);
  ASSERT_TRUE(second.resume());
  EXPECT_EQ(second.step(), 5);
  EXPECT_TRUE(second.run());
  ASSERT_EQ(second.losses().size(), 7u);
  for (size_t i = 0; i < 7; ++i) EXPECT_EQ(second.losses()[i], ref.losses()[5 + i]) << "step " << 6 + i;
  EXPECT_EQ(biases(second), ref_bias);
}

TEST(MoETrain, NonFiniteRouterLogitsNameTheLayerAndStep) {
  test::TempDir dir("lmlab_moe_nan");
  TrainConfig c = moe_config(dir);
  Trainer tr(c);
  tr.train_step();
  tr.train_step();
  for (auto& [n, p] : tr.model().named_parameters())
    if (n == "model.layers.1.mlp.gate.weight") {
      NoGrad ng;
      fill_(p, NAN);
    }
  test::expect_error<Error>([&] { tr.train_step(); }, "router logits of layer 1");
  test::expect_error<Error>([&] { tr.train_step(); }, "at step 3");
}

// A NaN reaching a recurrent (KDA) layer's state stops training with the layer and the step named.
TEST(HybridTrain, NonFiniteRecurrentStateNamesTheLayerAndStep) {
  test::TempDir dir("lmlab_kda_nan");
  TrainConfig c = moe_config(dir);
  c.model.architecture = "LlamaForCausalLM";
  c.model.num_experts = 0;
  c.model.num_experts_per_tok = 0;
  c.model.moe_intermediate_size = 0;
  c.model.layer_pattern = "KM";
  c.model.linear_num_heads = 2;
  c.model.linear_head_dim = 16;
  c.model.kv_lora_rank = 16;
  c.model.qk_nope_head_dim = 8;
  c.model.qk_rope_head_dim = 0;
  c.model.v_head_dim = 8;
  Trainer tr(c);
  tr.train_step();
  for (auto& [n, p] : tr.model().named_parameters())
    if (n == "model.layers.0.self_attn.v_proj.weight") {
      NoGrad ng;
      fill_(p, NAN);
    }
  test::expect_error<Error>([&] { tr.train_step(); }, "layer 0");
  test::expect_error<Error>([&] { tr.train_step(); }, "at step 2");
}
