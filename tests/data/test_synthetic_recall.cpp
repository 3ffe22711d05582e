// MQAR and palindrome generators: registered, deterministic by seed, and the sequences they give the
// model hold what the layout promises (each MQAR answer is the value bound to its query key in the
// prefix; the palindrome's answers are the prompt reversed; answers are flagged exactly there).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "lmlab/core/error.h"
#include "lmlab/data/synthetic_recall.h"

using namespace lmlab;

TEST(SyntheticRecall, Registered) {
  auto names = synthetic_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "mqar"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "palindrome"), names.end());
  Generator g(3);
  EXPECT_EQ(make_synthetic("mqar")->sample(g).answer.size(), 48u);
  EXPECT_EQ(make_synthetic("palindrome")->sample(g).answer.size(), 63u);
}

TEST(SyntheticRecall, DeterministicBySeed) {
  MQARTask t(8, 20);
  Generator a(11), b(11), c(12);
  SyntheticExample ea = t.sample(a), eb = t.sample(b), ec = t.sample(c);
  EXPECT_EQ(ea.prompt, eb.prompt);
  EXPECT_EQ(ea.answer, eb.answer);
  EXPECT_NE(ea.prompt + ea.answer, ec.prompt + ec.answer);
}

TEST(SyntheticRecall, MQARAnswersAreTheBoundValues) {
  MQARTask t(16, 48);
  Generator g(5);
  for (int rep = 0; rep < 20; ++rep) {
    SyntheticExample e = t.sample(g);
    EXPECT_TRUE(t.correct(e, e.answer));
    RecallSequence s = t.sequence(e);
    ASSERT_EQ(int64_t(s.tokens.size()), t.length());
    ASSERT_EQ(s.tokens.size(), s.is_answer.size());
    EXPECT_EQ(t.length(), 129);
    std::map<int64_t, int64_t> kv;
    for (int64_t i = 0; i < 16; ++i) {
      int64_t k = s.tokens[size_t(1 + 2 * i)], v = s.tokens[size_t(2 + 2 * i)];
      EXPECT_TRUE(k >= 1 && k < 32) << k;
      EXPECT_TRUE(v >= 32 && v < 64) << v;
      EXPECT_EQ(kv.count(k), 0u) << "keys must be distinct";
      kv[k] = v;
      EXPECT_FALSE(s.is_answer[size_t(1 + 2 * i)] || s.is_answer[size_t(2 + 2 * i)]);
    }
    int64_t answers = 0;
    for (size_t p = 33; p < s.tokens.size(); p += 2) {
      ASSERT_EQ(kv.count(s.tokens[p]), 1u) << "query key not among the pairs";
      EXPECT_EQ(s.tokens[p + 1], kv[s.tokens[p]]);
      EXPECT_FALSE(s.is_answer[p]);
      EXPECT_TRUE(s.is_answer[p + 1]);
      ++answers;
    }
    EXPECT_EQ(answers, 48);
  }
}

TEST(SyntheticRecall, PalindromeIsReversed) {
  PalindromeTask t(10);
  Generator g(9);
  SyntheticExample e = t.sample(g);
  RecallSequence s = t.sequence(e);
  ASSERT_EQ(int64_t(s.tokens.size()), t.length());
  EXPECT_EQ(s.tokens[0], 0);
  EXPECT_EQ(s.tokens[11], 1);  // separator
  for (int64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(s.tokens[size_t(12 + i)], s.tokens[size_t(10 - i)]);
    EXPECT_TRUE(s.is_answer[size_t(12 + i)]);
    EXPECT_FALSE(s.is_answer[size_t(1 + i)]);
  }
  EXPECT_FALSE(s.is_answer[11]);
}

TEST(SyntheticRecall, Errors) {
  EXPECT_THROW(MQARTask(0, 4), ConfigError);
  EXPECT_THROW(MQARTask(32, 4), ConfigError);  // only 31 distinct keys
  EXPECT_THROW(PalindromeTask(0), ConfigError);
  EXPECT_THROW(token_ids("ab~"), ValueError);
  EXPECT_THROW(token_chars({64}), ValueError);
  MQARTask t(4, 4);
  EXPECT_THROW(t.sequence({"123", "4"}), ValueError);
}
