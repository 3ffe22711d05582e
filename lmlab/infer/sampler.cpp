// Sampler chain.
#include "lmlab/infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "lmlab/core/error.h"

namespace lmlab {

void SamplerConfig::validate() const {
  LMLAB_CHECK(temperature >= 0, ConfigError, "[sampler] temperature must be >= 0, got ", temperature);
  LMLAB_CHECK(top_k >= 0, ConfigError, "[sampler] top_k must be >= 0, got ", top_k);
  LMLAB_CHECK(top_p > 0 && top_p <= 1, ConfigError, "[sampler] top_p must be in (0, 1], got ", top_p);
  LMLAB_CHECK(min_p >= 0 && min_p < 1, ConfigError, "[sampler] min_p must be in [0, 1), got ", min_p);
  LMLAB_CHECK(repetition_penalty > 0, ConfigError, "[sampler] repetition_penalty must be > 0, got ",
              repetition_penalty);
}

int64_t sample_token(const float* logits, int64_t V, const std::vector<int64_t>& history, const SamplerConfig& cfg,
                     Generator& gen) {
  LMLAB_CHECK(V > 0, ValueError, "[sampler] empty logits");
  std::vector<float> l(logits, logits + V);
  if (cfg.repetition_penalty != 1.0) {
    std::unordered_set<int64_t> seen;
    size_t from = history.size() > size_t(cfg.repeat_last_n) ? history.size() - size_t(cfg.repeat_last_n) : 0;
    for (size_t i = from; i < history.size(); ++i) seen.insert(history[i]);
    for (int64_t t : seen) {
      if (t < 0 || t >= V) continue;
      float& x = l[size_t(t)];
      x = x > 0 ? float(x / cfg.repetition_penalty) : float(x * cfg.repetition_penalty);
    }
  }
  if (cfg.temperature == 0) return int64_t(std::max_element(l.begin(), l.end()) - l.begin());
  // candidates sorted by logit, descending
  std::vector<int32_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  int64_t k = cfg.top_k > 0 ? std::min<int64_t>(cfg.top_k, V) : V;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b);
  });
  idx.resize(size_t(k));
  // probabilities at temperature 1 for the top-p / min-p filters (llama.cpp applies them before temperature)
  float m = l[size_t(idx[0])];
  std::vector<double> p(idx.size());
  double z = 0;
  for (size_t i = 0; i < idx.size(); ++i) z += (p[i] = std::exp(double(l[size_t(idx[i])] - m)));
  for (auto& x : p) x /= z;
  size_t keep = idx.size();
  if (cfg.top_p < 1.0) {
    double c = 0;
    for (size_t i = 0; i < idx.size(); ++i) {
      c += p[i];
      if (c >= cfg.top_p) { keep = i + 1; break; }
    }
  }
  if (cfg.min_p > 0) {
    double thr = cfg.min_p * p[0];
    size_t n = 1;
    while (n < keep && p[n] >= thr) ++n;
    keep = n;
  }
  // temperature on the survivors, then draw
  std::vector<double> w(keep);
  double wz = 0;
  for (size_t i = 0; i < keep; ++i) wz += (w[i] = std::exp(double(l[size_t(idx[i])] - m) / cfg.temperature));
  double u = gen.uniform() * wz;
  for (size_t i = 0; i < keep; ++i) {
    u -= w[i];
    if (u < 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace lmlab
