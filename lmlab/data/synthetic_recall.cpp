// MQAR and palindrome generators (layout in synthetic_recall.h).
#include "lmlab/data/synthetic_recall.h"

#include <algorithm>

#include "lmlab/core/error.h"

namespace lmlab {

namespace {
constexpr int64_t kBos = 0, kSep = 1;
constexpr int64_t kKeyLo = 1, kKeyHi = 32, kValLo = 32, kValHi = 64;  // MQAR keys / values [lo, hi)
constexpr int64_t kSymLo = 2;                                          // palindrome symbols [2, 64)
}  // namespace

std::vector<int64_t> token_ids(const std::string& s) {
  std::vector<int64_t> ids;
  ids.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    int64_t id = int64_t(static_cast<unsigned char>(s[i])) - '0';
    LMLAB_CHECK(id >= 0 && id < kRecallVocab, ValueError, "[synthetic_recall] character ", int(static_cast<unsigned char>(s[i])),
                " at offset ", i, " is outside the 64-token alphabet '0'..'o'");
    ids.push_back(id);
  }
  return ids;
}

std::string token_chars(const std::vector<int64_t>& ids) {
  std::string s;
  s.reserve(ids.size());
  for (int64_t id : ids) {
    LMLAB_CHECK(id >= 0 && id < kRecallVocab, ValueError, "[synthetic_recall] token id ", id, " is outside [0, 64)");
    s.push_back(char('0' + id));
  }
  return s;
}

MQARTask::MQARTask(int64_t pairs, int64_t queries) : pairs_(pairs), queries_(queries) {
  LMLAB_CHECK(pairs > 0 && pairs <= kKeyHi - kKeyLo, ConfigError, "[mqar] pairs must be in [1, ", kKeyHi - kKeyLo,
              "], got ", pairs);
  LMLAB_CHECK(queries > 0, ConfigError, "[mqar] queries must be positive, got ", queries);
}

std::string MQARTask::description() const {
  return str_cat("multi-query associative recall: ", pairs_, " key-value pairs, then ", queries_,
                 " queries of those keys; predict each query's value");
}

SyntheticExample MQARTask::sample(Generator& gen) const {
  std::vector<int64_t> keys;
  for (int64_t k = kKeyLo; k < kKeyHi; ++k) keys.push_back(k);
  for (int64_t i = 0; i < pairs_; ++i) std::swap(keys[size_t(i)], keys[size_t(gen.randint(i, int64_t(keys.size())))]);
  keys.resize(size_t(pairs_));
  std::vector<int64_t> vals(static_cast<size_t>(pairs_));
  for (auto& v : vals) v = gen.randint(kValLo, kValHi);
  std::vector<int64_t> prompt, answer;
  for (int64_t i = 0; i < pairs_; ++i) prompt.insert(prompt.end(), {keys[size_t(i)], vals[size_t(i)]});
  for (int64_t q = 0; q < queries_; ++q) {
    int64_t j = gen.randint(0, pairs_);
    prompt.push_back(keys[size_t(j)]);
    answer.push_back(vals[size_t(j)]);
  }
  return {token_chars(prompt), token_chars(answer)};
}

RecallSequence MQARTask::sequence(const SyntheticExample& ex) const {
  std::vector<int64_t> p = token_ids(ex.prompt), a = token_ids(ex.answer);
  LMLAB_CHECK(int64_t(p.size()) == 2 * pairs_ + queries_ && int64_t(a.size()) == queries_, ValueError,
              "[mqar] example has ", p.size(), " prompt and ", a.size(), " answer tokens, expected ",
              2 * pairs_ + queries_, " and ", queries_);
  RecallSequence s;
  s.tokens.push_back(kBos);
  s.tokens.insert(s.tokens.end(), p.begin(), p.begin() + 2 * pairs_);
  s.is_answer.assign(s.tokens.size(), 0);
  for (int64_t q = 0; q < queries_; ++q) {
    s.tokens.push_back(p[size_t(2 * pairs_ + q)]);
    s.is_answer.push_back(0);
    s.tokens.push_back(a[size_t(q)]);
    s.is_answer.push_back(1);
  }
  return s;
}

PalindromeTask::PalindromeTask(int64_t n) : n_(n) {
  LMLAB_CHECK(n > 0, ConfigError, "[palindrome] length must be positive, got ", n);
}

std::string PalindromeTask::description() const {
  return str_cat("palindrome: ", n_, " random tokens, a separator, then the same tokens reversed");
}

SyntheticExample PalindromeTask::sample(Generator& gen) const {
  std::vector<int64_t> x(static_cast<size_t>(n_));
  for (auto& t : x) t = gen.randint(kSymLo, kRecallVocab);
  std::vector<int64_t> prompt = x;
  prompt.push_back(kSep);
  std::reverse(x.begin(), x.end());
  return {token_chars(prompt), token_chars(x)};
}

RecallSequence PalindromeTask::sequence(const SyntheticExample& ex) const {
  std::vector<int64_t> p = token_ids(ex.prompt), a = token_ids(ex.answer);
  LMLAB_CHECK(int64_t(p.size()) == n_ + 1 && int64_t(a.size()) == n_, ValueError, "[palindrome] example has ",
              p.size(), " prompt and ", a.size(), " answer tokens, expected ", n_ + 1, " and ", n_);
  RecallSequence s;
  s.tokens.push_back(kBos);
  s.tokens.insert(s.tokens.end(), p.begin(), p.end());
  s.is_answer.assign(s.tokens.size(), 0);
  s.tokens.insert(s.tokens.end(), a.begin(), a.end());
  s.is_answer.resize(s.tokens.size(), 1);
  return s;
}

}  // namespace lmlab

using lmlab::MQARTask;
using lmlab::PalindromeTask;
LMLAB_REGISTER_SYNTHETIC(MQARTask, "mqar");
LMLAB_REGISTER_SYNTHETIC(PalindromeTask, "palindrome");
