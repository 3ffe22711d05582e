// Training and decoding throughput of the Llama-style model (configs in bench/train_configs.h):
// train_A / train_B (f32), train_B_bf16 (bf16 matmuls, f32 master weights), decode_A (batch-1
// greedy with the KV cache). Prints RESULT lines: tokens/s, and the f32 sgemm peak measured here
// so run.sh can print MFU. Usage: bench_train [A|B|B_bf16|decode_A|peak ...]
#include <cblas.h>

#include <cstdio>
#include <string>

#include "bench/bench_util.h"
#include "bench/train_configs.h"
#include "lmlab/infer/generate.h"
#include "lmlab/lmlab.h"
#include "lmlab/objectives/causal_lm.h"
#include "lmlab/train/optim.h"

using namespace lmlab;

namespace {

double sgemm_peak() {
  const int n = 1024;
  Generator g(1);
  Tensor a = Tensor::randn({n, n}, g), b = Tensor::randn({n, n}, g), c = Tensor::empty({n, n});
  double t = bench::median_time([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n,
                0.0f, c.data<float>(), n);
  }, 3, 15);
  return 2.0 * n * n * double(n) / t / 1e9;
}

void train(const std::string& which, bool bf16, int steps) {
  TransformerConfig cfg = bench::train_config(which);
  Transformer m(cfg, 1);
  AdamWOptions o;
  o.lr = 3e-4;
  AdamW opt(m.parameters(), o);
  const int64_t B = 16, T = 256;
  Generator g(7);
  auto batch = [&] {
    std::vector<int64_t> ids(size_t(B * (T + 1)));
    for (auto& x : ids) x = g.randint(0, cfg.vocab_size);
    Tensor t = Tensor::from_vector(ids, {B, T + 1});
    return std::make_pair(t.narrow(1, 0, T).contiguous(), t.narrow(1, 1, T).contiguous());
  };
  AutocastBF16 ac(bf16);
  auto step = [&] {
    auto [in, tg] = batch();
    Tensor loss = causal_lm_loss(m, in, tg);
    loss.backward();
    clip_grad_norm(m.parameters(), 1.0);
    opt.step();
    opt.zero_grad();
    return loss.item();
  };
  for (int i = 0; i < 2; ++i) step();
  double t0 = bench::now_s();
  double last = 0;
  for (int i = 0; i < steps; ++i) last = step();
  double dt = (bench::now_s() - t0) / steps;
  std::string name = "train_" + which + (bf16 ? "_bf16" : "");
  bench::result(name.c_str(), double(B * T) / dt, "tokens/s");
  bench::result((name + ".flops_per_token").c_str(), bench::train_flops_per_token(cfg, T), "FLOP");
  std::printf("INFO %s: %lld parameters, %.3f s/step, last loss %.4f\n", name.c_str(), (long long)m.num_parameters(),
              dt, last);
}

void decode(const std::string& which) {
  TransformerConfig cfg = bench::train_config(which);
  Transformer m(cfg, 1);
  GenerateOptions go;
  go.sampler.temperature = 0;
  go.max_new_tokens = 255;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    InferState st(m);
    GenerateStats s;
    generate(m, st, {1}, go, &s);
    best = std::max(best, s.decode_tok_s());
  }
  bench::result(("decode_" + which).c_str(), best, "tokens/s");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> what;
  for (int i = 1; i < argc; ++i) what.push_back(argv[i]);
  if (what.empty()) what = {"peak", "A", "B", "B_bf16", "decode_A"};
  for (const auto& w : what) {
    if (w == "peak") bench::result("sgemm_peak", sgemm_peak(), "GFLOP/s");
    else if (w == "A") train("A", false, 10);
    else if (w == "B") train("B", false, 4);
    else if (w == "B_bf16") train("B", true, 6);
    else if (w == "decode_A") decode("A");
  }
  return 0;
}
