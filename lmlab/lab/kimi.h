// Kimi Linear measurements shared by the `kimi-linear` experiment and bench/bench_kimi.cpp (spec:
// shared/papers/kimi-linear.md, "KV cache + decode speed"): cache bytes per layer kind measured from a
// model's CacheSet, and batch-1 decode time per token at a given context. Caches are filled to the
// context directly (random latents / keys / values / states of the right shapes, as a prefill would
// leave them) instead of prefilling: decode cost depends on the cache sizes, not on their values, and a
// 64k full-attention prefill on CPU would take far longer than the measurement itself.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "lmlab/models/transformer.h"

namespace lmlab {

// A decode-benchmark model with Kimi Linear's proportions scaled down: `pattern` is the layer schedule
// ("KKKM" = 3 KDA : 1 MLA, "M" = all MLA, "A" = all full attention with as many kv heads as heads);
// MLA keeps kv_lora_rank + rope channels per token (Kimi: 512 + 64, NoPE), KDA heads = attention heads.
struct KimiDecodeShape {
  int64_t hidden = 512, layers = 8, heads = 8, intermediate = 1408, vocab = 4096;
  int64_t kv_lora_rank = 256, rope_dim = 32;  // MLA latent width per token = kv_lora_rank + rope_dim
};
TransformerConfig kimi_decode_config(const KimiDecodeShape& s, const std::string& pattern, int64_t max_context);

// Fills every layer cache of `cache` (a new_cache() of `model`, batch 1) to `length` positions.
void fill_cache_random(const Transformer& model, CacheSet& cache, int64_t length, uint64_t seed = 7);

// Bytes of one layer kind's caches in a set (kind: "kv", "mla", "recurrent"; "" = all).
size_t cache_bytes_of_kind(const Transformer& model, const CacheSet& cache, const std::string& kind);

struct DecodeTiming {
  int64_t context = 0;
  double ms_per_token = 0;   // fastest timed step: on a shared machine other processes only ever add time
  double ms_median = 0;      // median timed step
  size_t cache_bytes = 0;    // whole CacheSet after filling
};
// Fills caches to context - warmup - steps positions, runs `warmup` untimed then `steps` timed batch-1
// decode steps (one token each through the whole model, logits included), so the timed steps end at
// `context`. Runs without gradients.
DecodeTiming time_decode(const Transformer& model, int64_t context, int steps = 8, int warmup = 2);

}  // namespace lmlab
