// Kimi Linear bars (shared/papers/kimi-linear.md, "KV cache + decode speed"): cache bytes at 16k and
// batch-1 decode speed at long contexts of a 3:1 KDA:MLA hybrid against an all-MLA model with the same
// heads (the paper's all-attention baseline, Table 1 "0:1") and, for cache bytes, an all full-attention
// (MHA) model. Random weights; caches filled to the context directly (lmlab/lab/kimi.h says why).
// Prints `RESULT <name> <value> <unit>`; bench/run.sh turns them into BENCH lines.
//   bench_kimi [--no-bytes] [--steps N] [contexts...]   (default 65536; decode of every listed context)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "lmlab/core/node.h"
#include "lmlab/lab/kimi.h"

using namespace lmlab;

int main(int argc, char** argv) {
  std::vector<int64_t> contexts;
  bool bytes = true;
  int steps = 8;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--no-bytes") bytes = false;
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else contexts.push_back(std::atoll(argv[i]));
  }
  if (contexts.empty()) contexts = {65536};
  KimiDecodeShape shape;
  int64_t max_ctx = 1 << 20;
  Transformer hybrid(kimi_decode_config(shape, "KKKM", max_ctx), 1);
  Transformer mla(kimi_decode_config(shape, "M", max_ctx), 2);
  hybrid.train(false);
  mla.train(false);
  std::printf("INFO model: hidden %lld, %lld layers, %lld heads x %lld, MLA latent %lld + %lld (NoPE), f32, batch 1\n",
              (long long)shape.hidden, (long long)shape.layers, (long long)shape.heads,
              (long long)(shape.hidden / shape.heads), (long long)shape.kv_lora_rank, (long long)shape.rope_dim);

  // ---- cache bytes at 16k ----
  const int64_t L = 16384;
  if (bytes) {
  auto bytes_at = [&](const Transformer& m) {
    NoGrad ng;
    CacheSet c = m.new_cache();
    fill_cache_random(m, c, L);
    return c.bytes();
  };
  size_t hb = bytes_at(hybrid), mb = bytes_at(mla);
  size_t ab;
  {
    Transformer mha(kimi_decode_config(shape, "A", max_ctx), 3);
    ab = bytes_at(mha);
  }
  std::printf("RESULT kimi_cache_bytes_16k.hybrid %zu bytes\n", hb);
  std::printf("RESULT kimi_cache_bytes_16k.all_mla %zu bytes\n", mb);
  std::printf("RESULT kimi_cache_bytes_16k.all_mha %zu bytes\n", ab);
  std::printf("INFO cache at 16k: hybrid/all-MLA %.4f, hybrid/all-MHA %.4f\n", double(hb) / double(mb),
              double(hb) / double(ab));
  }

  // ---- decode ----
  for (int64_t ctx : contexts) {
    DecodeTiming h = time_decode(hybrid, ctx, steps, 2);
    DecodeTiming m = time_decode(mla, ctx, steps, 2);
    std::printf("RESULT kimi_decode_%lld.hybrid %.3f tokens/s\n", (long long)ctx, 1000.0 / h.ms_per_token);
    std::printf("RESULT kimi_decode_%lld.all_mla %.3f tokens/s\n", (long long)ctx, 1000.0 / m.ms_per_token);
    std::printf("INFO decode at %lld (fastest of %d steps): hybrid %.2f ms/token, all-MLA %.2f ms/token, speedup %.2fx "
                "(medians %.2f / %.2f ms)\n", (long long)ctx, steps, h.ms_per_token, m.ms_per_token,
                m.ms_per_token / h.ms_per_token, h.ms_median, m.ms_median);
    std::fflush(stdout);
  }
  return 0;
}
