// Expert-load statistics of sparse MoE layers, as the trainer logs them and the `moe` experiment
// reports them (spec: /work/shared/papers/moe.md, "Measure"): per layer the assignment counts, the
// max/mean load ratio, the coefficient of variation of the loads, and "dead" experts that receive
// fewer than 1% of the tokens.
#pragma once
#include <cstdint>
#include <vector>

namespace lmlab {

struct MoELayerLoad {
  int64_t layer = -1;           // decoder layer index
  int64_t top_k = 0;            // K
  std::vector<int64_t> counts;  // [E] (token, slot) assignments per expert; sums to tokens * K
  int64_t tokens = 0;           // tokens routed (sum of counts / K)
  double max_over_mean = 0;     // max_e counts_e / mean_e counts_e (1 = perfect balance, E / K = collapse onto K)
  double cv = 0;                // population std / mean of counts (0 = perfect balance)
  int64_t dead = 0;             // experts whose share of tokens (counts_e / tokens) is below dead_share
  // Share of tokens that use expert e (counts_e / tokens): sums to K; K / E under uniform routing.
  std::vector<double> token_share() const;
};

// The share of tokens below which an expert counts as dead (the spec's 1%).
inline constexpr double kDeadExpertShare = 0.01;

// Fills max_over_mean, cv, dead and tokens from `counts` (ValueError when top_k <= 0 or counts is empty).
MoELayerLoad summarize_moe_load(int64_t layer, const std::vector<int64_t>& counts, int64_t top_k);

// The balance loss E * sum_e f_e * P_e from plain numbers (no graph): f_e = counts_e / sum counts,
// P_e the mean router probability. Used to log the loss of a whole step, whose f spans every
// micro-batch; ShapeError when the sizes differ.
double load_balancing_value(const std::vector<int64_t>& counts, const std::vector<double>& prob_mean);

}  // namespace lmlab
