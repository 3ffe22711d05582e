// Sampler chain.
#include "lmlab/infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "lmlab/core/error.h"

namespace lmlab {

void SamplerConfig::validate() const {
  LMLAB_CHECK(temperature >= 0, ConfigError, "[sampler] temperature must be >= 0, got ", temperature);
  LMLAB_CHECK(top_k >= 0, ConfigError, "[sampler] top_k must be >= 0, got ", top_k);
  LMLAB_CHECK(top_p > 0 && top_p <= 1, ConfigError, "[sampler] top_p must be in (0, 1], got ", top_p);
  LMLAB_CHECK(min_p >= 0 && min_p < 1, ConfigError, "[sampler] min_p must be in [0, 1), got ", min_p);
  LMLAB_CHECK(repetition_penalty > 0, ConfigError, "[sampler] repetition_penalty must be > 0, got ",
              repetition_penalty);
  LMLAB_CHECK(std::isfinite(frequency_penalty) && std::isfinite(presence_penalty), ConfigError,
              "[sampler] frequency_penalty and presence_penalty must be finite");
  for (const auto& [id, bias] : logit_bias)
    LMLAB_CHECK(id >= 0 && std::isfinite(bias), ConfigError, "[sampler] logit_bias needs token ids >= 0 and finite "
                "biases, got ", id, ": ", bias);
}

namespace {
// The logits after logit bias and the penalties over the last repeat_last_n tokens of history.
std::vector<float> adjusted_logits(const float* logits, int64_t V, const std::vector<int64_t>& history,
                                   const SamplerConfig& cfg) {
  std::vector<float> l(logits, logits + V);
  for (const auto& [id, bias] : cfg.logit_bias)
    if (id < V) l[size_t(id)] += bias;
  const bool freq = cfg.frequency_penalty != 0 || cfg.presence_penalty != 0;
  if (cfg.repetition_penalty == 1.0 && !freq) return l;
  std::unordered_map<int64_t, int64_t> count;
  size_t from = history.size() > size_t(cfg.repeat_last_n) ? history.size() - size_t(cfg.repeat_last_n) : 0;
  for (size_t i = from; i < history.size(); ++i) ++count[history[i]];
  for (const auto& [t, n] : count) {
    if (t < 0 || t >= V) continue;
    float& x = l[size_t(t)];
    if (cfg.repetition_penalty != 1.0) x = x > 0 ? float(x / cfg.repetition_penalty) : float(x * cfg.repetition_penalty);
    if (freq) x -= float(cfg.frequency_penalty * double(n) + cfg.presence_penalty);
  }
  return l;
}

SamplingCandidates candidates_of(const std::vector<float>& l, const SamplerConfig& cfg) {
  const int64_t V = int64_t(l.size());
  auto before = [&](int32_t a, int32_t b) {  // descending logit, then ascending id
    return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b);
  };
  std::vector<int32_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  bool sorted = false;  // idx in `before` order
  if (cfg.top_k > 0 && cfg.top_k < V) {
    std::nth_element(idx.begin(), idx.begin() + cfg.top_k, idx.end(), before);
    idx.resize(size_t(cfg.top_k));
    std::sort(idx.begin(), idx.end(), before);
    sorted = true;
  }
  // probabilities at temperature 1 over the candidates, for the top-p / min-p filters (llama.cpp
  // applies them before temperature)
  float m = l[size_t(*std::min_element(idx.begin(), idx.end(), before))];
  auto rel = [&](int32_t i) { return std::exp(double(l[size_t(i)] - m)); };  // probability x z
  if (cfg.top_p < 1.0) {
    double z = 0;  // only top-p needs the normaliser
    for (int32_t i : idx) z += rel(i);
    // the smallest head (in order) holding top_p of the mass: sort a head of n, grow it until it holds
    // enough (each round a selection over the rest), so the whole vocabulary is rarely sorted
    size_t keep = idx.size();
    for (size_t n = 64;; n *= 4) {
      const size_t h = std::min(n, idx.size());
      if (!sorted) {
        if (h < idx.size()) std::nth_element(idx.begin(), idx.begin() + long(h), idx.end(), before);
        std::sort(idx.begin(), idx.begin() + long(h), before);
      }
      double c = 0;
      size_t i = 0;
      for (; i < h; ++i)
        if ((c += rel(idx[i]) / z) >= cfg.top_p) break;
      if (i < h) { keep = i + 1; break; }
      if (h == idx.size()) break;
    }
    idx.resize(keep);
    sorted = true;
  }
  if (cfg.min_p > 0) {
    std::vector<int32_t> kept;  // probability >= min_p times the top candidate's: exp(l - m) >= min_p
    for (int32_t i : idx)
      if (rel(i) >= cfg.min_p) kept.push_back(i);
    idx.swap(kept);
    if (!sorted && idx.size() <= 4096) {  // few survivors: walk them in order, as a sorted chain does
      std::sort(idx.begin(), idx.end(), before);
      sorted = true;
    }
  }
  SamplingCandidates c;
  c.ids = std::move(idx);
  c.weights.resize(c.ids.size());
  for (size_t i = 0; i < c.ids.size(); ++i) c.weights[i] = std::exp(double(l[size_t(c.ids[i])] - m) / cfg.temperature);
  return c;
}
}  // namespace

SamplingCandidates sampling_candidates(const float* logits, int64_t V, const std::vector<int64_t>& history,
                                       const SamplerConfig& cfg) {
  LMLAB_CHECK(V > 0, ValueError, "[sampler] empty logits");
  LMLAB_CHECK(cfg.temperature > 0, ValueError, "[sampler] sampling candidates need temperature > 0");
  return candidates_of(adjusted_logits(logits, V, history, cfg), cfg);
}

int64_t sample_token(const float* logits, int64_t V, const std::vector<int64_t>& history, const SamplerConfig& cfg,
                     Generator& gen) {
  LMLAB_CHECK(V > 0, ValueError, "[sampler] empty logits");
  std::vector<float> l = adjusted_logits(logits, V, history, cfg);
  if (cfg.temperature == 0) return int64_t(std::max_element(l.begin(), l.end()) - l.begin());
  SamplingCandidates c = candidates_of(l, cfg);
  double wz = 0;
  for (double w : c.weights) wz += w;
  double u = gen.uniform() * wz;
  for (size_t i = 0; i < c.ids.size(); ++i) {
    u -= c.weights[i];
    if (u < 0) return c.ids[i];
  }
  return c.ids.back();
}

}  // namespace lmlab
