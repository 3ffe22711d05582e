// Training throughput of a sparse MoE model against the dense model with the same active FLOPs
// (spec: /work/shared/papers/moe.md). Both: Qwen3 attention (q/k norms), d 256, 4 layers, 4 heads,
// vocab 4096, context 256, batch 16, untied LM head, f32. MoE: 8 experts of SwiGLU width 256, top-2
// (active FFN = 2 x 256); dense peer: SwiGLU width 512. Steps of the two alternate so machine noise
// hits both alike. Prints RESULT moe_train / dense_train (tokens/s), and with "profile" the times of
// one MoE layer against one dense FFN (forward; forward+backward; the grouped training node against
// the plain per-expert autograd path; the routing alone).
// Usage: bench_moe [train|profile ...]
#include <cstdio>
#include <string>

#include "bench/bench_util.h"
#include "lmlab/lmlab.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/reduce.h"
#include "lmlab/train/optim.h"

using namespace lmlab;

namespace {

constexpr int64_t kB = 16, kT = 256;

TransformerConfig config(bool moe) {
  TransformerConfig c;
  c.architecture = moe ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM";
  c.vocab_size = 4096;
  c.max_position_embeddings = kT;
  c.tie_word_embeddings = false;
  c.hidden_size = 256;
  c.num_hidden_layers = 4;
  c.num_attention_heads = c.num_key_value_heads = 4;
  c.intermediate_size = 512;
  if (moe) {
    c.num_experts = 8;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = 256;
    c.norm_topk_prob = true;
  }
  return c;
}

struct Run {
  explicit Run(bool moe) : cfg(config(moe)), m(cfg, 1), opt(m.parameters(), AdamWOptions{}) {}
  double step(Generator& g) {
    std::vector<int64_t> ids(size_t(kB * (kT + 1)));
    for (auto& x : ids) x = g.randint(0, cfg.vocab_size);
    Tensor t = Tensor::from_vector(ids, {kB, kT + 1});
    RouterStatsCollector rs;  // as the trainer does: router statistics and the balance loss
    Tensor loss = causal_lm_loss(m, t.narrow(1, 0, kT).contiguous(), t.narrow(1, 1, kT).contiguous());
    if (!rs.stats().empty()) loss = add(loss, mul(rs.load_balancing_loss(), 0.01));
    loss.backward();
    clip_grad_norm(m.parameters(), 1.0);
    opt.step();
    opt.zero_grad();
    return loss.item();
  }
  TransformerConfig cfg;
  Transformer m;
  AdamW opt;
};

void train() {
  Run moe(true), dense(false);
  Generator gm(7), gd(7);
  auto [tm, td] = bench::median_time_pair([&] { moe.step(gm); }, [&] { dense.step(gd); }, 2, 7);
  bench::result("moe_train", double(kB * kT) / tm, "tokens/s");
  bench::result("dense_train", double(kB * kT) / td, "tokens/s");
  std::printf("INFO moe: %lld parameters (%.3f s/step); dense: %lld parameters (%.3f s/step)\n",
              (long long)moe.m.num_parameters(), tm, (long long)dense.m.num_parameters(), td);
}

// One MoE layer against one dense SwiGLU of the active width, on the bench's token count.
void profile() {
  Generator g(3);
  const int64_t N = kB * kT, C = 256;
  MoEConfig mc;
  mc.hidden = C;
  mc.num_experts = 8;
  mc.top_k = 2;
  mc.expert_intermediate = 256;
  SparseMoE moe(mc, g, 0.02, 0.02);
  SwiGLUMLP dense(C, 512, g, 0.02, 0.02);
  Tensor x = Tensor::randn({N, C}, g);
  auto fwd_moe = [&] { NoGrad ng; moe.forward(x); };
  auto fwd_dense = [&] { NoGrad ng; dense.forward(x); };
  auto [fm, fd] = bench::median_time_pair(fwd_moe, fwd_dense, 2, 9);
  std::printf("INFO forward [%lld x %lld]: moe %.2f ms, dense %.2f ms (ratio %.2f)\n", (long long)N, (long long)C,
              fm * 1e3, fd * 1e3, fd / fm);
  Tensor xg = x.detach();
  xg.set_requires_grad(true);
  auto fb_moe = [&] { sum(moe.forward(xg)).backward(); };
  auto fb_dense = [&] { sum(dense.forward(xg)).backward(); };
  auto [bm, bd] = bench::median_time_pair(fb_moe, fb_dense, 2, 9);
  std::printf("INFO forward+backward: moe %.2f ms, dense %.2f ms (ratio %.2f)\n", bm * 1e3, bd * 1e3, bd / bm);
  // The same layer through the per-expert autograd path (moe_dispatch_combine calling each expert's
  // forward; SparseMoE's training path before the grouped node): what the grouped node saves.
  auto fb_per_expert = [&] {
    MoERouting r = moe_route(moe.gate->forward(xg), mc);
    Tensor y = moe_dispatch_combine(xg, r, mc.num_experts,
                                    [&](int64_t e, const Tensor& xe) { return moe.experts[size_t(e)]->forward(xe); });
    sum(y).backward();
  };
  auto [bp, bg] = bench::median_time_pair(fb_per_expert, fb_moe, 2, 9);
  std::printf("INFO forward+backward: per-expert autograd path %.2f ms, grouped node %.2f ms (%.2fx)\n", bp * 1e3,
              bg * 1e3, bp / bg);
  // The routing alone (router matmul, softmax, top-k, gate weights).
  auto route = [&] { NoGrad ng; moe_route(moe.gate->forward(x), mc); };
  double tr = bench::median_time(route, 2, 9);
  std::printf("INFO routing only: %.2f ms\n", tr * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> what;
  for (int i = 1; i < argc; ++i) what.push_back(argv[i]);
  if (what.empty()) what = {"train"};
  for (const auto& w : what) {
    if (w == "train") train();
    else if (w == "profile") profile();
    else {
      std::fprintf(stderr, "bench_moe: unknown benchmark '%s' (train | profile)\n", w.c_str());
      return 2;
    }
  }
  return 0;
}
