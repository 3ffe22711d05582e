// Sparse mixture-of-experts FFN (Shazeer et al. 2017; Switch / GShard balancing; HF Qwen3MoeSparseMoeBlock;
// DeepSeek-V3 sigmoid routing with aux-loss-free balancing). Spec: /work/shared/papers/moe.md.
// Each token goes to its top-K of E SwiGLU experts. The forward gathers the tokens of each expert into
// one block and runs that expert's matmuls on the block (never a loop over tokens), then adds the
// gate-weighted outputs back per token (index_add). Gradients reach the router through the gate
// weights and every expert that received tokens.
// Parameter names are HF Qwen3-MoE's: "gate.weight" [E, C] (the router), "experts.{e}.gate_proj.weight",
// "experts.{e}.up_proj.weight", "experts.{e}.down_proj.weight"; shared experts are one SwiGLU named
// "shared_experts" (DeepSeek-V3's name; n shared experts of width I equal one of width n * I);
// the sigmoid router's selection bias is the buffer "gate.e_score_correction_bias" (DeepSeek-V3's name).
#pragma once
#include <functional>
#include <vector>

#include "lmlab/nn/attention.h"

namespace lmlab {

struct MoEConfig {
  int64_t hidden = 256;               // C
  int64_t num_experts = 8;            // E
  int64_t top_k = 2;                  // K (num_experts_per_tok)
  int64_t expert_intermediate = 128;  // moe_intermediate_size: each expert's SwiGLU width
  bool norm_topk_prob = true;         // renormalise the K selected gate weights to sum to 1
  // Softmax: p = softmax(logits), top-K on p, weights p (Qwen3-MoE, Mixtral).
  // Sigmoid: s = sigmoid(logits), top-K on s + bias (bias only chooses), weights s (DeepSeek-V3).
  enum class Router { Softmax, Sigmoid } router = Router::Softmax;
  double routed_scaling_factor = 1.0;  // multiplies the routed weights (DeepSeek-V3 uses 2.5)
  // Sigmoid router only. false (DeepSeek-V3, vLLM): the selection bias only chooses the experts and the
  // weights are the plain scores s. true (Kimi-Linear's released modeling_kimi.py, whose in-place
  // `scores_for_choice += bias` writes through a view of the scores): the weights are s + bias.
  bool bias_in_weights = false;
  int64_t num_shared_experts = 0;      // always-on experts added unweighted to the routed output
  int64_t shared_intermediate = 0;     // width of each shared expert; 0 = expert_intermediate
  bool mixtral_expert_names = false;   // experts' projections named w1 / w3 / w2 (Mixtral, Kimi Linear)
  // Throws ConfigError naming the field.
  void validate() const;
};

// What one MoE forward tells the trainer, for balancing losses and load logging. `counts` are plain
// numbers (no gradient); prob_mean and z are differentiable scalars of the router.
struct RouterStats {
  int64_t layer = -1;   // the block's layer index (-1 when not set)
  int64_t tokens = 0;   // T: tokens routed in this forward
  int64_t top_k = 0;    // K
  std::vector<int64_t> counts;  // [E]: (token, slot) assignments per expert; sums to T * K
  Tensor prob_mean;     // [E] P_e = mean over tokens of the router probability (sigmoid: s_e / sum s)
  Tensor z;             // scalar: mean over tokens of logsumexp(logits)^2 (router z-loss)
  Tensor logits;        // [T, E] router logits (HF output_router_logits), for analysis and tests
};

// Switch/GShard balance loss of one forward: E * sum_e f_e P_e with f_e = counts_e / (T * K), so it is
// 1 under uniform routing and E when every token goes to one expert with probability 1. Differentiable
// through P only. `counts` overrides the forward's own counts, e.g. counts summed over every
// micro-batch of a step (global-batch balancing); it must have E entries.
Tensor load_balancing_loss(const RouterStats& s, const std::vector<int64_t>& counts = {});

// Collects the RouterStats of every SparseMoE forward that runs on this thread while it is alive
// (RAII; collectors nest, the innermost receives). Nothing is recorded without a collector, so
// inference pays nothing. Typical training step, per micro-batch:
//   RouterStatsCollector rs;  Tensor loss = lm_loss + alpha * rs.load_balancing_loss() + beta * rs.z_loss();
// Note: HF's load_balancing_loss_func concatenates all layers' logits and does not divide by K, so its
// value is K times this one at balance; here each layer's loss is E * sum f P (minimum 1) and layers add.
class RouterStatsCollector {
 public:
  RouterStatsCollector();
  ~RouterStatsCollector();
  RouterStatsCollector(const RouterStatsCollector&) = delete;
  RouterStatsCollector& operator=(const RouterStatsCollector&) = delete;

  const std::vector<RouterStats>& stats() const { return stats_; }
  void clear() { stats_.clear(); }
  // Sum over recorded forwards of load_balancing_loss (0 when none). `counts_by_entry`, when given,
  // holds one counts override per recorded entry (global-batch balancing).
  Tensor load_balancing_loss(const std::vector<std::vector<int64_t>>& counts_by_entry = {}) const;
  Tensor z_loss() const;  // sum over recorded forwards of RouterStats::z
  // The collector receiving stats on this thread (null when none).
  static RouterStatsCollector* active();
  void record(RouterStats s) { stats_.push_back(std::move(s)); }

 private:
  std::vector<RouterStats> stats_;
  RouterStatsCollector* prev_;
};

// ---- functional core (used by SparseMoE; tests call it with float64 tensors) ----
struct MoERouting {
  Tensor logits;   // [N, E] router logits (f32, or f64 for f64 inputs)
  Tensor scores;   // [N, E] softmax probabilities or sigmoid scores (differentiable)
  Tensor indices;  // [N, K] i64 chosen experts, best first; ties go to the lower expert index
  Tensor weights;  // [N, K] gate weights (differentiable through scores)
};
// logits [N, E] -> the routing decision. selection_bias [E] (sigmoid router only; may be undefined)
// shifts the scores used to choose, and the weights only when cfg.bias_in_weights.
MoERouting moe_route(const Tensor& logits, const MoEConfig& cfg, const Tensor& selection_bias = Tensor());

// One expert's FFN on the block of tokens routed to it: [n, C] -> [n, C].
using ExpertFn = std::function<Tensor(int64_t expert, const Tensor& x)>;
// x [N, C] -> y [N, C], y_n = sum_k weights[n, k] * expert_{indices[n, k]}(x_n). Tokens are grouped per
// expert (counting sort, token order kept inside a group): one index_select, one call per expert that
// got tokens, one index_add. `counts` (optional) receives the [E] assignment counts.
Tensor moe_dispatch_combine(const Tensor& x, const MoERouting& r, int64_t num_experts, const ExpertFn& expert,
                            std::vector<int64_t>* counts = nullptr);

// The router: weight [E, C] and, for the sigmoid router, the selection bias buffer [E].
class MoERouter : public Module {
 public:
  MoERouter(int64_t hidden, int64_t num_experts, bool selection_bias, Generator& gen, double std);
  Tensor forward(const Tensor& x) const;  // [N, C] -> logits [N, E], computed in f32 (f64 for f64 x)
  Tensor weight;
  Tensor e_score_correction_bias;  // undefined for the softmax router
};

class SparseMoE : public Module {
 public:
  // std: init of router and expert input projections; out_std: expert down projections.
  SparseMoE(const MoEConfig& cfg, Generator& gen, double std, double out_std, int64_t layer_index = -1);
  Tensor forward(const Tensor& x) const;  // [..., C] -> [..., C]
  // Aux-loss-free balancing (DeepSeek-V3): b_e += gamma * sign(mean load - load_e), from the counts of
  // one step (summed over micro-batches). Sigmoid router only (ValueError otherwise).
  void update_selection_bias(const std::vector<int64_t>& counts, double gamma);

  MoEConfig cfg;
  int64_t layer_index;
  std::shared_ptr<MoERouter> gate;
  std::vector<std::shared_ptr<SwiGLUMLP>> experts;
  std::shared_ptr<SwiGLUMLP> shared_experts;  // null without shared experts
};

}  // namespace lmlab
