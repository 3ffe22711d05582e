// Unigram / bigram baselines.
#include "lmlab/experiments/ngram.h"

#include <cmath>
#include <unordered_map>

#include "lmlab/core/error.h"
#include "lmlab/data/token_shard.h"

namespace lmlab {

NgramResult ngram_baselines(const std::string& train_shard, const std::string& eval_shard) {
  TokenShard tr = TokenShard::open(train_shard), ev = TokenShard::open(eval_shard);
  LMLAB_CHECK(tr.size() > 1 && ev.size() > 1, ValueError, "[ngram] shards too small");
  uint64_t V = std::max(tr.vocab_size(), ev.vocab_size());
  std::vector<double> uni(V, 0.0);
  std::unordered_map<uint64_t, double> bi;
  std::vector<double> ctx(V, 0.0);  // counts of each token as a bigram context
  bi.reserve(tr.size());
  for (uint64_t i = 0; i < tr.size(); ++i) {
    uint32_t t = tr.at(i);
    uni[t] += 1;
    if (i + 1 < tr.size()) {
      bi[uint64_t(t) * V + tr.at(i + 1)] += 1;
      ctx[t] += 1;
    }
  }
  double N = double(tr.size());
  NgramResult r;
  // unigram: add-k smoothing, k from a small grid
  auto uni_p = [&](uint32_t t, double k) { return (uni[t] + k) / (N + k * double(V)); };
  double best = INFINITY;
  for (double k : {0.01, 0.1, 0.5, 1.0}) {
    double loss = 0;
    for (uint64_t i = 1; i < ev.size(); ++i) loss -= std::log(uni_p(ev.at(i), k));
    loss /= double(ev.size() - 1);
    if (loss < best) {
      best = loss;
      r.unigram_k = k;
    }
  }
  r.unigram_loss = best;
  // bigram interpolated with the unigram
  double bbest = INFINITY;
  for (double lam : {0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}) {
    double loss = 0;
    for (uint64_t i = 1; i < ev.size(); ++i) {
      uint32_t a = ev.at(i - 1), b = ev.at(i);
      double pb = 0;
      if (ctx[a] > 0) {
        auto it = bi.find(uint64_t(a) * V + b);
        pb = it == bi.end() ? 0.0 : it->second / ctx[a];
      }
      loss -= std::log(lam * pb + (1 - lam) * uni_p(b, r.unigram_k));
    }
    loss /= double(ev.size() - 1);
    if (loss < bbest) {
      bbest = loss;
      r.bigram_lambda = lam;
    }
  }
  r.bigram_loss = bbest;
  return r;
}

}  // namespace lmlab
