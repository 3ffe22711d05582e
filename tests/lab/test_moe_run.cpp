// A training run of a sparse MoE model logs expert loads to the run registry at every eval interval
// (per layer max/mean, CV, dead experts, per-expert token shares; the aux loss) and puts the last
// interval's loads into the run summary; the load statistics themselves are checked on known counts.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "lmlab/data/token_shard.h"
#include "lmlab/lab/train_run.h"
#include "lmlab/train/moe_stats.h"
#include "tests/test_util.h"

using namespace lmlab;

TEST(MoELoad, StatisticsOfKnownCounts) {
  MoELayerLoad even = summarize_moe_load(3, {25, 25, 25, 25}, 2);  // 50 tokens, top-2
  EXPECT_EQ(even.layer, 3);
  EXPECT_EQ(even.tokens, 50);
  EXPECT_DOUBLE_EQ(even.max_over_mean, 1.0);
  EXPECT_DOUBLE_EQ(even.cv, 0.0);
  EXPECT_EQ(even.dead, 0);
  EXPECT_DOUBLE_EQ(even.token_share()[0], 0.5);
  // collapse onto two experts: max/mean = E / K, CV = 1, two dead
  MoELayerLoad collapsed = summarize_moe_load(0, {0, 50, 50, 0}, 2);
  EXPECT_DOUBLE_EQ(collapsed.max_over_mean, 2.0);
  EXPECT_DOUBLE_EQ(collapsed.cv, 1.0);
  EXPECT_EQ(collapsed.dead, 2);
  // dead = under 1% of the tokens: 1 of 200 tokens is dead, 2 of 200 is not
  MoELayerLoad edge = summarize_moe_load(0, {1, 2, 197, 200}, 2);
  EXPECT_EQ(edge.dead, 1);
  test::expect_error<ValueError>([] { summarize_moe_load(0, {1, 2}, 0); }, "top_k");
  // E * sum f P: 1 at balance, E when one expert takes everything with probability 1
  EXPECT_DOUBLE_EQ(load_balancing_value({5, 5, 5, 5}, {0.25, 0.25, 0.25, 0.25}), 1.0);
  EXPECT_DOUBLE_EQ(load_balancing_value({0, 9, 0, 0}, {0, 1, 0, 0}), 4.0);
}

TEST(MoERun, LoadsAreLoggedEveryEvalInterval) {
  test::TempDir dir("lmlab_moe_run");
  std::vector<uint32_t> ids(6000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint32_t((i * 7 + i / 3) % 61);
  write_token_shard(dir / "train.tok", ids, 61);
  TrainConfig c;
  c.model.architecture = "Qwen3MoeForCausalLM";
  c.model.vocab_size = 61;
  c.model.hidden_size = 16;
  c.model.num_hidden_layers = 2;
  c.model.num_attention_heads = 2;
  c.model.num_key_value_heads = 2;
  c.model.max_position_embeddings = 16;
  c.model.num_experts = 4;
  c.model.num_experts_per_tok = 2;
  c.model.moe_intermediate_size = 8;
  c.train_data = c.val_data = dir / "train.tok";
  c.batch_size = 2;
  c.context = 16;
  c.steps = 6;
  c.warmup = 1;
  c.eval_every = 3;
  c.eval_batches = 2;
  c.moe_aux_loss_coef = 0.01;
  TrainRunOptions o;
  o.registry_path = dir / "lmlab.db";
  o.runs_dir = dir / "runs";
  TrainRunResult r = run_training(c, o);
  EXPECT_EQ(r.status, "done");
  RunRegistry reg = RunRegistry::open(o.registry_path);
  for (const char* m : {"moe/aux_loss", "moe/max_over_mean", "moe/cv", "moe/dead", "moe/layer0/max_over_mean",
                        "moe/layer1/cv", "moe/layer1/dead", "moe/layer0/share_3"}) {
    auto s = reg.metric_series(r.run_id, m);
    ASSERT_EQ(s.size(), 2u) << m;
    EXPECT_EQ(s[0].first, 3) << m;
    EXPECT_EQ(s[1].first, 6) << m;
  }
  // the shares of one layer sum to K
  double share = 0;
  for (int e = 0; e < 4; ++e) share += reg.metric_series(r.run_id, "moe/layer0/share_" + std::to_string(e))[1].second;
  EXPECT_NEAR(share, 2.0, 1e-9);
  ASSERT_EQ(r.moe.layers.size(), 2u);
  EXPECT_EQ(r.moe.steps, 3);
  EXPECT_EQ(r.moe.layers[0].tokens, 3 * c.batch_size * c.context);
  EXPECT_GT(r.moe.aux_loss, 1.5);  // about 1 per layer near balance
  EXPECT_LT(r.moe.aux_loss, 8.0);  // at most E per layer
  nlohmann::json summary = nlohmann::json::parse(reg.get_run(r.run_id).summary_json);
  ASSERT_TRUE(summary.contains("moe"));
  EXPECT_EQ(summary["moe"]["layers"].size(), 2u);
}
