// Expert-load statistics.
#include "lmlab/train/moe_stats.h"

#include <algorithm>
#include <cmath>

#include "lmlab/core/error.h"

namespace lmlab {

std::vector<double> MoELayerLoad::token_share() const {
  std::vector<double> s(counts.size(), 0.0);
  for (size_t e = 0; e < counts.size() && tokens > 0; ++e) s[e] = double(counts[e]) / double(tokens);
  return s;
}

MoELayerLoad summarize_moe_load(int64_t layer, const std::vector<int64_t>& counts, int64_t top_k) {
  LMLAB_CHECK(top_k > 0, ValueError, "[moe-stats] top_k must be positive, got ", top_k);
  LMLAB_CHECK(!counts.empty(), ValueError, "[moe-stats] layer ", layer, ": no experts in the counts");
  MoELayerLoad l;
  l.layer = layer;
  l.top_k = top_k;
  l.counts = counts;
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  l.tokens = total / top_k;
  if (total == 0) return l;
  const double E = double(counts.size()), mean = double(total) / E;
  double var = 0;
  for (int64_t c : counts) var += (double(c) - mean) * (double(c) - mean) / E;
  l.max_over_mean = double(*std::max_element(counts.begin(), counts.end())) / mean;
  l.cv = std::sqrt(var) / mean;
  for (double s : l.token_share()) l.dead += s < kDeadExpertShare;
  return l;
}

double load_balancing_value(const std::vector<int64_t>& counts, const std::vector<double>& prob_mean) {
  LMLAB_CHECK(counts.size() == prob_mean.size(), ShapeError, "[moe-stats] counts has ", counts.size(),
              " experts, prob_mean ", prob_mean.size());
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (total == 0) return 0.0;
  double s = 0;
  for (size_t e = 0; e < counts.size(); ++e) s += double(counts[e]) / double(total) * prob_mean[e];
  return double(counts.size()) * s;
}

}  // namespace lmlab
