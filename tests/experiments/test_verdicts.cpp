// Each experiment's verdict is a pure function of its measurements: fed fixed numbers, it decides
// every claim both ways, "mixed" when the seeds disagree within their spread, and "not tested" when a
// run diverged or a variant is missing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "lmlab/experiments/kda_recall.h"
#include "lmlab/experiments/kimi_linear.h"
#include "lmlab/experiments/lm_vs_ngram.h"
#include "lmlab/experiments/moe.h"
#include "lmlab/lab/experiments.h"

using namespace lmlab;

namespace {

// One Measurements per seed from {figure: value per seed}.
Measured seeds_of(const std::map<std::string, std::vector<double>>& figs) {
  Measured m;
  size_t n = figs.begin()->second.size();
  for (size_t i = 0; i < n; ++i) {
    Measurements s;
    s.seed = i + 1;
    for (const auto& [k, v] : figs)
      if (std::isfinite(v[i])) s.figures[k] = v[i];
    m.seeds.push_back(s);
  }
  return m;
}

const Claim& find(const std::vector<Claim>& cs, const std::string& group, const std::string& start) {
  for (const auto& c : cs)
    if (c.group == group && c.claim.rfind(start, 0) == 0) return c;
  static Claim none;
  ADD_FAILURE() << "no claim '" << start << "' in group '" << group << "'";
  return none;
}

}  // namespace

TEST(Experiments, EveryKindIsRegistered) {
  std::vector<std::string> k = experiment_kinds();
  for (const char* want : {"kda_recall", "kimi_linear", "lm_vs_ngram", "moe"})
    EXPECT_NE(std::find(k.begin(), k.end(), want), k.end()) << want;
}

// ---- lm-vs-ngram: "far below" is a stated margin, "below" beside it ----
TEST(LmVsNgramVerdict, FarBelowNeedsTheMargin) {
  lm_vs_ngram::Rules r;  // 0.5 nats
  auto v = [&](std::vector<double> model, std::vector<double> bigram) {
    return lm_vs_ngram::verdict(seeds_of({{"val_loss", model}, {"bigram_val", bigram}}), r);
  };
  auto c = v({4.0}, {5.0});  // 1.0 below: far
  EXPECT_EQ(c[0].verdict, Verdict::Held);
  EXPECT_EQ(c[1].verdict, Verdict::Held);
  c = v({4.8}, {5.0});  // 0.2 below: below, not far
  EXPECT_EQ(c[0].verdict, Verdict::DidNotHold);
  EXPECT_EQ(c[1].verdict, Verdict::Held);
  c = v({5.3}, {5.0});  // above
  EXPECT_EQ(c[0].verdict, Verdict::DidNotHold);
  EXPECT_EQ(c[1].verdict, Verdict::DidNotHold);
  c = v({4.3, 4.7}, {5.0, 5.0});  // margins 0.2, -0.2 for "far"
  EXPECT_EQ(c[0].verdict, Verdict::Mixed);
  EXPECT_EQ(c[1].verdict, Verdict::Held);
  EXPECT_NE(c[0].rule.find("0.5 nats/token"), std::string::npos) << c[0].rule;
}

// ---- moe: the spec's collapse rule needs both a skewed load and dead experts ----
TEST(MoEVerdict, CollapseNeedsSkewAndDeadExperts) {
  moe::Rules r;
  auto collapse = [&](std::vector<double> mom, std::vector<double> dead) {
    Measured m = seeds_of({{"moe-none/max_over_mean", mom}, {"moe-none/dead", dead}, {"moe-none/cv", std::vector<double>(mom.size(), 0.5)}});
    return find(moe::verdict(m, r), "", "Without balancing").verdict;
  };
  EXPECT_EQ(collapse({3.5}, {4}), Verdict::Held);
  EXPECT_EQ(collapse({2.5}, {0}), Verdict::DidNotHold);  // skewed but no dead expert: the old rule said held
  EXPECT_EQ(collapse({1.5}, {3}), Verdict::DidNotHold);  // dead experts but max/mean <= 2
  EXPECT_EQ(collapse({3.0, 1.2}, {2, 0}), Verdict::Mixed);
  Measured m = seeds_of({{"moe-none/max_over_mean", {3.5}}, {"moe-none/dead", {4}}, {"moe-none/cv", {0.9}}});
  const Claim& c = find(moe::verdict(m, r), "", "Without balancing");
  EXPECT_NE(c.ours.find("max/mean 3.50"), std::string::npos) << c.ours;  // both numbers reported
  EXPECT_NE(c.ours.find("dead experts 4.0"), std::string::npos) << c.ours;
}

TEST(MoEVerdict, LossClaimsBothWaysAndTheBestBalancedMoE) {
  moe::Rules r;
  auto m = seeds_of({{"dense-A/val_loss", {4.0, 4.0}},
                     {"dense-B/val_loss", {4.4, 4.4}},
                     {"moe-aux/val_loss", {4.1, 4.12}},
                     {"moe-auxfree/val_loss", {4.3, 4.3}},
                     {"moe-none/val_loss", {4.2, 4.2}},
                     {"moe-aux/cv", {0.1, 0.1}},
                     {"moe-auxfree/cv", {0.2, 0.2}},
                     {"moe-none/cv", {0.8, 0.9}}});
  EXPECT_EQ(moe::best_balanced(m), "moe-aux");
  auto c = moe::verdict(m, r);
  EXPECT_EQ(find(c, "", "At equal active FLOPs").verdict, Verdict::Held);
  EXPECT_EQ(find(c, "", "...approaching").verdict, Verdict::Held);  // closes 0.3 of the 0.4 gap
  EXPECT_EQ(find(c, "", "The aux loss and").verdict, Verdict::Held);
  EXPECT_EQ(find(c, "", "Aux-free balancing").verdict, Verdict::DidNotHold);  // 0.19 worse than aux
  auto worse = seeds_of({{"dense-A/val_loss", {4.0}}, {"dense-B/val_loss", {4.4}}, {"moe-aux/val_loss", {4.5}}});
  auto w = moe::verdict(worse, r);
  EXPECT_EQ(find(w, "", "At equal active FLOPs").verdict, Verdict::DidNotHold);
  EXPECT_EQ(find(w, "", "...approaching").verdict, Verdict::DidNotHold);
}

// ---- kda-recall: the ranking links, a diverged mixer, steps to accuracy ----
TEST(KdaRecallVerdict, RankingLinksBothWaysAndMixed) {
  kda_recall::Rules r;
  r.tasks = {"mqar"};
  r.steps = 300;
  r.eval_every = 25;
  auto f = [](const char* mixer, const char* what) { return kda_recall::fig("mqar", mixer, what); };
  std::map<std::string, std::vector<double>> figs = {
      {f("softmax", "final_acc"), {0.30, 0.90}}, {f("kda", "final_acc"), {0.80, 0.80}}, {f("gdn", "final_acc"), {0.70, 0.70}},
      {f("gla", "final_acc"), {0.20, 0.20}}};
  for (const char* mx : {"softmax", "kda", "gdn", "gla"}) figs[f(mx, "diverged")] = {0, 0};
  auto c = kda_recall::verdict(seeds_of(figs), r);
  EXPECT_EQ(find(c, "mqar", "softmax >= KDA").verdict, Verdict::Mixed);  // -0.48 and +0.12
  EXPECT_EQ(find(c, "mqar", "KDA >= GDN").verdict, Verdict::Held);
  EXPECT_EQ(find(c, "mqar", "GDN > GLA").verdict, Verdict::Held);
  figs[f("gdn", "final_acc")] = {0.95, 0.95};
  figs[f("gla", "final_acc")] = {0.99, 0.99};
  c = kda_recall::verdict(seeds_of(figs), r);
  EXPECT_EQ(find(c, "mqar", "KDA >= GDN").verdict, Verdict::DidNotHold);
  EXPECT_EQ(find(c, "mqar", "GDN > GLA").verdict, Verdict::DidNotHold);
  // within the tie tolerance counts as >=
  figs[f("gdn", "final_acc")] = {0.81, 0.81};
  EXPECT_EQ(find(kda_recall::verdict(seeds_of(figs), r), "mqar", "KDA >= GDN").verdict, Verdict::Held);
}

TEST(KdaRecallVerdict, ADivergedMixerTestsNothingAndLeavesTheRanking) {
  kda_recall::Rules r;
  r.tasks = {"mqar"};
  r.steps = 300;
  r.eval_every = 25;
  auto f = [](const char* mixer, const char* what) { return kda_recall::fig("mqar", mixer, what); };
  std::map<std::string, std::vector<double>> figs = {
      {f("softmax", "final_acc"), {0.9, 0.9}}, {f("kda", "final_acc"), {0.8, NAN}}, {f("gdn", "final_acc"), {0.7, 0.7}},
      {f("softmax", "diverged"), {0, 0}}, {f("kda", "diverged"), {0, 1}}, {f("gdn", "diverged"), {0, 0}}};
  Measured m = seeds_of(figs);
  auto c = kda_recall::verdict(m, r);
  const Claim& sk = find(c, "mqar", "softmax >= KDA");
  EXPECT_TRUE(std::isnan(sk.margins[1]));
  EXPECT_EQ(sk.verdict, Verdict::Held);  // seed 1 decides; seed 2 tested nothing
  EXPECT_NE(sk.note.find("kda diverged in seed 2"), std::string::npos) << sk.note;
  std::vector<std::string> diverged;
  auto rank = kda_recall::ranking(m, "mqar", {"softmax", "kda", "gdn"}, &diverged);
  EXPECT_EQ(rank, (std::vector<std::string>{"softmax", "gdn"}));
  EXPECT_EQ(diverged, (std::vector<std::string>{"kda"}));
  // diverged in every seed: not tested
  figs[f("kda", "diverged")] = {1, 1};
  figs[f("kda", "final_acc")] = {NAN, NAN};
  EXPECT_EQ(find(kda_recall::verdict(seeds_of(figs), r), "mqar", "softmax >= KDA").verdict, Verdict::NotTested);
}

TEST(KdaRecallVerdict, FasterIsStepsToTheHighestThresholdEitherReaches) {
  kda_recall::Rules r;
  r.tasks = {"mqar"};
  r.thresholds = {0.5, 0.9};
  r.steps = 300;
  r.eval_every = 25;
  auto f = [](const char* mixer, const char* what) { return kda_recall::fig("mqar", mixer, what); };
  std::map<std::string, std::vector<double>> figs = {{f("kda", "diverged"), {0}}, {f("gdn", "diverged"), {0}},
                                                     {f("kda", "steps_to_0.50"), {100}}, {f("gdn", "steps_to_0.50"), {150}},
                                                     {f("kda", "steps_to_0.90"), {250}}, {f("gdn", "steps_to_0.90"), {NAN}}};
  auto c = kda_recall::verdict(seeds_of(figs), r);
  const Claim& fast = find(c, "mqar", "KDA reaches");
  EXPECT_EQ(fast.verdict, Verdict::Held);
  EXPECT_DOUBLE_EQ(fast.margins[0], 325 - 250);  // GDN never reached 0.9: counts as steps + one eval
  figs[f("kda", "steps_to_0.90")] = {NAN};
  figs[f("kda", "steps_to_0.50")] = {200};
  EXPECT_EQ(find(kda_recall::verdict(seeds_of(figs), r), "mqar", "KDA reaches").verdict, Verdict::DidNotHold);
  figs[f("kda", "steps_to_0.50")] = {NAN};
  figs[f("gdn", "steps_to_0.50")] = {NAN};
  EXPECT_EQ(find(kda_recall::verdict(seeds_of(figs), r), "mqar", "KDA reaches").verdict, Verdict::NotTested);
}

TEST(KdaRecallVerdict, StillRisingIsReadFromTheCurve) {
  kda_recall::Rules r;
  auto f = kda_recall::fig("mqar", "softmax", "late_gain");
  Verdict v;
  std::string s = kda_recall::still_rising(seeds_of({{f, {0.15, 0.2}}}), r, "mqar", "softmax", "Softmax attention", &v);
  EXPECT_EQ(v, Verdict::Held);
  EXPECT_NE(s.find("still rising"), std::string::npos) << s;
  s = kda_recall::still_rising(seeds_of({{f, {0.0, 0.01}}}), r, "mqar", "softmax", "Softmax attention", &v);
  EXPECT_EQ(v, Verdict::DidNotHold);
  EXPECT_NE(s.find("levelled off"), std::string::npos) << s;
  EXPECT_EQ(s.find("still rising"), std::string::npos) << s;
  kda_recall::still_rising(seeds_of({{f, {0.3, -0.2}}}), r, "mqar", "softmax", "Softmax attention", &v);
  EXPECT_EQ(v, Verdict::Mixed);
}

// ---- kimi-linear: loss claims both ways; the cache claim says it is fixed by the layer pattern ----
TEST(KimiLinearVerdict, LayerRatioClaimsBothWays) {
  kimi_linear::Rules r;
  auto m = seeds_of({{"brown/all-mla/val_loss", {2.00, 2.00}},
                     {"brown/kda3-mla1/val_loss", {1.90, 1.95}},
                     {"brown/kda1-mla1/val_loss", {1.91, 1.96}},
                     {"brown/kda/val_loss", {2.10, 2.10}}});
  auto c = kimi_linear::verdict(m, r);
  EXPECT_EQ(find(c, "", "Table 1: the 3:1 hybrid").verdict, Verdict::Held);
  EXPECT_EQ(find(c, "", "Table 1: 1:1 is about").verdict, Verdict::Held);
  EXPECT_EQ(find(c, "", "Spec: pure KDA").verdict, Verdict::Held);
  m = seeds_of({{"brown/all-mla/val_loss", {1.80}}, {"brown/kda3-mla1/val_loss", {1.90}}, {"brown/kda1-mla1/val_loss", {2.10}},
                {"brown/kda/val_loss", {1.85}}});
  c = kimi_linear::verdict(m, r);
  EXPECT_EQ(find(c, "", "Table 1: the 3:1 hybrid").verdict, Verdict::DidNotHold);
  EXPECT_EQ(find(c, "", "Table 1: 1:1 is about").verdict, Verdict::DidNotHold);
  EXPECT_EQ(find(c, "", "Spec: pure KDA").verdict, Verdict::DidNotHold);
}

TEST(KimiLinearVerdict, CacheIsFixedByThePatternAndDecodeIsMeasured) {
  kimi_linear::Rules r;
  r.contexts = {1024, 65536};
  auto m = seeds_of({{"cache/hybrid/growth_per_token", {2304}}, {"cache/mla/growth_per_token", {9216}},
                     {"cache/hybrid/bytes_16k", {4e7}}, {"cache/mla/bytes_16k", {1.5e8}}, {"cache/mha/bytes_16k", {5e8}},
                     {"decode/hybrid/1024", {10}}, {"decode/mla/1024", {12}}, {"decode/hybrid/65536", {20}},
                     {"decode/mla/65536", {50}}});
  auto c = kimi_linear::verdict(m, r);
  const Claim& cache = find(c, "", "KV cache reduced");
  EXPECT_EQ(cache.verdict, Verdict::Held);
  EXPECT_NE(cache.note.find("fixed by the layer pattern"), std::string::npos);
  EXPECT_NE(cache.ours.find("2304 vs 9216 bytes/token"), std::string::npos) << cache.ours;
  EXPECT_EQ(find(c, "", "Faster long-context").verdict, Verdict::Held);
  EXPECT_EQ(find(c, "", "Spec: the batch-1 speedup grows").verdict, Verdict::Held);
  m.seeds[0].figures["decode/mla/65536"] = 18;  // slower than the hybrid's 20 at 64k, and shrinking
  c = kimi_linear::verdict(m, r);
  EXPECT_EQ(find(c, "", "Faster long-context").verdict, Verdict::DidNotHold);
  EXPECT_EQ(find(c, "", "Spec: the batch-1 speedup grows").verdict, Verdict::DidNotHold);
  m.seeds[0].figures["cache/hybrid/growth_per_token"] = 4608;  // half of all-MLA's: not 1 in 4
  EXPECT_EQ(find(kimi_linear::verdict(m, r), "", "KV cache reduced").verdict, Verdict::DidNotHold);
}
