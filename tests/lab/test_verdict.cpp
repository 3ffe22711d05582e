// Seeds, spreads and verdicts: the shared machinery every experiment's verdict uses, fed fixed numbers.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lab/report.h"
#include "lmlab/lab/seeds.h"
#include "lmlab/lab/verdict.h"

using namespace lmlab;

TEST(Spread, MeanSampleSdRangeAndMissing) {
  Spread s = spread_of({1.0, 2.0, 3.0, NAN});
  EXPECT_EQ(s.n, 3);
  EXPECT_EQ(s.missing, 1);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.sd, 1.0);  // sample sd (n - 1)
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 3.0);
  Spread one = spread_of({0.5});
  EXPECT_EQ(one.sd, 0.0);
  EXPECT_EQ(format_spread(one, 2), "0.50");
  EXPECT_EQ(format_spread(spread_of({1.0, 3.0}), 1), "2.0 ± 1.4");
  EXPECT_EQ(format_spread(spread_of({NAN}), 2), "n/a");
  EXPECT_EQ(format_spread(s, 1), "2.0 ± 1.0 (1 of 4 seeds n/a)");
}

TEST(Verdict, EverySeedDecides) {
  EXPECT_EQ(verdict_of({0.1}), Verdict::Held);
  EXPECT_EQ(verdict_of({-0.1}), Verdict::DidNotHold);
  EXPECT_EQ(verdict_of({0.01, 0.5, 0.02}), Verdict::Held);         // every seed, however small
  EXPECT_EQ(verdict_of({-0.01, -0.5, -0.02}), Verdict::DidNotHold);
}

TEST(Verdict, BeyondTheSpreadOrMixed) {
  // One seed disagrees but the mean is more than a standard deviation from zero.
  EXPECT_EQ(verdict_of({1.0, 1.0, 1.0, 1.0, -0.1}), Verdict::Held);
  EXPECT_EQ(verdict_of({-1.0, -1.0, -1.0, -1.0, 0.1}), Verdict::DidNotHold);
  // Seeds on both sides within the spread.
  EXPECT_EQ(verdict_of({0.3, -0.2}), Verdict::Mixed);
  EXPECT_EQ(verdict_of({0.05, -0.04, 0.02}), Verdict::Mixed);
  // A margin of exactly zero is not "held" in that seed.
  EXPECT_EQ(verdict_of({0.0}), Verdict::Mixed);
}

TEST(Verdict, NaNSeedsTestNothing) {
  EXPECT_EQ(verdict_of({}), Verdict::NotTested);
  EXPECT_EQ(verdict_of({NAN, NAN}), Verdict::NotTested);
  EXPECT_EQ(verdict_of({NAN, 0.2}), Verdict::Held);  // the seed that could test it decides
  EXPECT_STREQ(verdict_name(Verdict::DidNotHold), "did not hold");
  EXPECT_STREQ(verdict_name(Verdict::Mixed), "mixed");
}

TEST(Measured, FiguresPerSeedAndCurvesWithBands) {
  Measured m;
  Measurements a, b;
  a.seed = 1;
  b.seed = 2;
  a.figures["x"] = 1;
  b.figures["x"] = 3;
  a.curves["c"] = {{0, 10, 20}, {1.0, 2.0, 3.0}};
  b.curves["c"] = {{0, 10}, {3.0, 4.0}};  // shorter: the common prefix is plotted
  m.seeds = {a, b};
  EXPECT_EQ(m.values("x"), (std::vector<double>{1, 3}));
  EXPECT_TRUE(std::isnan(m.values("y")[0]));
  EXPECT_TRUE(m.has("x"));
  EXPECT_FALSE(m.has("y"));
  EXPECT_EQ(m.show("x", 0), "2 ± 1");
  Series s = m.curve("c", "c");
  EXPECT_EQ(s.x, (std::vector<double>{0, 10}));
  EXPECT_EQ(s.y, (std::vector<double>{2, 3}));
  EXPECT_EQ(s.lo, (std::vector<double>{1, 2}));
  EXPECT_EQ(s.hi, (std::vector<double>{3, 4}));
  m.seeds.pop_back();
  EXPECT_TRUE(m.curve("c", "c").lo.empty());  // one seed: no band
  EXPECT_EQ(m.seed_list(), (std::vector<uint64_t>{1}));
}

TEST(Claims, DecidedFromMarginsAndReported) {
  Measured m;
  for (double v : {0.4, 0.6}) {
    Measurements s;
    s.figures["a"] = v;
    s.figures["b"] = 0.5;
    m.seeds.push_back(s);
  }
  Claim c = decide("t", "a beats b", "a - b", "a vs b", per_seed(m, [](const Measurements& s) { return s.get("a") - s.get("b"); }));
  EXPECT_EQ(c.verdict, Verdict::Mixed);
  Claim n = not_tested("", "c", "ours", "why");
  EXPECT_EQ(n.verdict, Verdict::NotTested);
  auto j = claims_json({c, n});
  EXPECT_EQ(j[0]["verdict"], "mixed");
  EXPECT_EQ(j[0]["group"], "t");
  EXPECT_EQ(j[1]["note"], "why");
  Report rep("r");
  add_claims(rep, {c, n});
  std::string md = rep.markdown();
  EXPECT_NE(md.find("| t | a beats b | a - b | a vs b |"), std::string::npos) << md;
  EXPECT_NE(md.find("| mixed |"), std::string::npos) << md;
}
