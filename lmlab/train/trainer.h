// The training loop for causal LMs: AdamW (decay on matrices only, as nanoGPT), warmup + cosine,
// gradient clipping and accumulation, periodic evaluation (loss, perplexity, bits per byte),
// atomic HF-layout checkpoints with keep-last-K, exact resume (model, optimizer, schedule, data
// position and elapsed time are all in the checkpoint), and a stop flag for SIGINT. The library
// never prints: progress goes to the on_step / on_eval / on_checkpoint / on_moe_stats callbacks.
// Sparse MoE models (spec: /work/shared/papers/moe.md) add alpha * load-balancing loss and
// beta * router z-loss to every micro-batch, update the aux-loss-free selection biases of sigmoid
// routers after every optimizer step, and report per-layer expert loads at every eval interval.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "lmlab/data/loader.h"
#include "lmlab/models/transformer.h"
#include "lmlab/train/moe_stats.h"
#include "lmlab/train/optim.h"
#include "lmlab/train/schedule.h"

namespace lmlab {

struct TrainConfig {
  TransformerConfig model;
  std::string train_data, val_data;  // token shards
  std::string tokenizer_json;        // copied into every checkpoint (may be empty)
  double val_bytes_per_token = 0;    // UTF-8 bytes per token on the val split (for bits per byte)
  int64_t batch_size = 16, context = 256, grad_accum = 1, steps = 1000;
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0;
  int64_t warmup = 100;
  int64_t eval_every = 100, eval_batches = 20, ckpt_every = 0, log_every = 1;
  int keep_last = 3;
  uint64_t seed = 1;
  // > 0: a deadline in seconds of training (across resumes): the run stops on the clock after the
  // step in progress, evaluates and checkpoints; the schedule's length is estimated from the speed.
  double time_budget_s = 0;
  std::string precision = "f32";
  std::string out_dir = "runs/train";
  // MoE balancing (ignored for dense models).
  // alpha: weight of the Switch/GShard balance loss (summed over layers, minimum 1 per layer); f counts
  // every micro-batch of the step seen so far (global-batch balancing). < 0: the model's
  // router_aux_loss_coef when its output_router_logits is set, else 0 (HF Qwen3-MoE's rule).
  double moe_aux_loss_coef = -1;
  double moe_z_loss_coef = 0;         // beta: router z-loss weight (ST-MoE uses 1e-3)
  double moe_bias_update_rate = 1e-3; // gamma: aux-loss-free bias step for sigmoid routers (0 = off)
  double moe_aux_coef() const;        // alpha after resolving the default

  std::string to_json() const;
  static TrainConfig from_json(const std::string& text, const std::string& source = "train config");
  void validate() const;
};

struct StepInfo {
  int64_t step = 0, total_steps = 0, tokens = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0, eta_s = 0;
};
// Expert loads of every sparse layer over the steps since the previous report (the eval interval).
struct MoEStatsInfo {
  int64_t step = 0;
  int64_t steps = 0;          // optimizer steps the counts cover
  double aux_loss = 0;        // mean per step of sum over layers of E * sum f P, f over the whole step
  double z_loss = 0;          // mean per step of sum over layers of mean logsumexp(logits)^2
  std::vector<MoELayerLoad> layers;
};
struct EvalInfo {
  int64_t step = 0;
  double val_loss = 0, val_ppl = 0, val_bpb = 0;
};

class Trainer {
 public:
  explicit Trainer(TrainConfig cfg);
  ~Trainer();
  // Resumes from the newest complete checkpoint under out_dir/checkpoints; false when none.
  bool resume();
  // Trains until the step count is reached, the time budget is spent (the step in progress finishes)
  // or a stop is requested; evaluates and checkpoints on schedule and at the end. Returns true when
  // it finished (step count or clock), false when stopped.
  bool run();
  double train_step();  // one optimizer step; returns the mean micro-batch loss
  EvalInfo evaluate();
  std::string save();   // checkpoint now; returns its folder

  // Async-signal-safe: sets a flag the loop checks between steps (SIGINT -> checkpoint and exit).
  static void request_stop();
  static bool stop_requested();
  static void clear_stop();

  Transformer& model() { return *model_; }
  const TrainConfig& config() const { return cfg_; }
  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_steps_; }
  int64_t tokens() const { return tokens_; }
  double elapsed_s() const { return elapsed_; }  // seconds trained, across resumes
  // Whether run() ended on the time budget's clock rather than the step count.
  bool stopped_on_clock() const { return stopped_on_clock_; }
  const std::vector<double>& losses() const { return losses_; }

  std::function<void(const StepInfo&)> on_step;
  std::function<void(const EvalInfo&)> on_eval;
  std::function<void(const std::string&)> on_checkpoint;
  // MoE models: called with the loads since the previous call at every eval interval and at the end
  // (whether or not there is val data).
  std::function<void(const MoEStatsInfo&)> on_moe_stats;

  bool is_moe() const { return !moe_.empty(); }
  // Loads since the last reset (the counts of steps this process ran); `reset` starts a new window.
  MoEStatsInfo moe_stats(bool reset);
  // Per sparse layer, the assignment counts of the last optimizer step (all its micro-batches).
  const std::vector<std::vector<int64_t>>& moe_step_counts() const { return moe_step_counts_; }

 private:
  std::string state_json() const;
  TrainConfig cfg_;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<AdamW> opt_;
  std::unique_ptr<WindowLoader> loader_;
  CosineSchedule sched_;
  int64_t step_ = 0, total_steps_ = 0, tokens_ = 0;
  double elapsed_ = 0;     // seconds trained, carried across resumes
  int budget_fits_ = 0;  // time-budget step-count estimates done (at 10, 50, then every 100 steps)
  bool stopped_on_clock_ = false;
  std::vector<double> losses_;  // this process's step losses (the LM loss, without balancing terms)
  std::vector<std::shared_ptr<SparseMoE>> moe_;  // the sparse layers, in layer order
  std::vector<std::vector<int64_t>> moe_step_counts_, moe_window_counts_;
  double moe_window_aux_ = 0, moe_window_z_ = 0;
  int64_t moe_window_steps_ = 0;
};

}  // namespace lmlab
