// Token-level recall tasks of the Kimi Linear / Zoology synthetic suite (spec: shared/papers/kimi-linear.md,
// Fig. 4): multi-query associative recall (MQAR) and palindrome. Tokens are ids 0..63 written as the
// characters '0' + id ('0'..'o'), so an example is also a SyntheticExample string pair; token_ids() and
// recall_sequence() give the model's view. Deterministic given the Generator state.
//   MQAR: [BOS] k1 v1 ... kP vP, then Q queries "k v" where k is one of the P keys (uniformly) and v its
//         value; the answers (loss / accuracy positions) are the Q query values. Keys are ids 1..31, values
//         32..63, keys distinct within an example. Registered as "mqar" (P = 16, Q = 48: 129 tokens).
//   palindrome: [BOS] x1 .. xN [SEP] xN .. x1; answers: the N reversed tokens. Symbols are ids 2..63, SEP = 1.
//         Registered as "palindrome" (N = 63: 128 tokens).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmlab/data/synthetic.h"

namespace lmlab {

inline constexpr int64_t kRecallVocab = 64;

// '0' + id -> id; throws ValueError naming the character outside the 64-token alphabet.
std::vector<int64_t> token_ids(const std::string& s);
std::string token_chars(const std::vector<int64_t>& ids);

// The full training sequence of an example and, per position, whether that token is an answer (the
// positions loss and accuracy count). Length 1 + |prompt| + |answer| for both tasks.
struct RecallSequence {
  std::vector<int64_t> tokens;
  std::vector<uint8_t> is_answer;
};

class MQARTask : public SyntheticTask {
 public:
  explicit MQARTask(int64_t pairs = 16, int64_t queries = 48);
  std::string description() const override;
  // prompt: the P key-value pairs then the Q query keys; answer: the Q values.
  SyntheticExample sample(Generator& gen) const override;
  RecallSequence sequence(const SyntheticExample& ex) const;  // queries interleaved with their answers
  int64_t length() const { return 1 + 2 * pairs_ + 2 * queries_; }

 private:
  int64_t pairs_, queries_;
};

class PalindromeTask : public SyntheticTask {
 public:
  explicit PalindromeTask(int64_t n = 63);
  std::string description() const override;
  SyntheticExample sample(Generator& gen) const override;  // prompt: x1..xN SEP; answer: xN..x1
  RecallSequence sequence(const SyntheticExample& ex) const;
  int64_t length() const { return 2 + 2 * n_; }

 private:
  int64_t n_;
};

}  // namespace lmlab
