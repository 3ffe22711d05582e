// Kimi measurements (lmlab/lab/kimi.h): filling caches to a length gives every layer kind its own cache
// with the expected bytes (MLA: R + Dr values per token; KDA: a constant state + conv tails; MHA: K and V
// of every head), so the 3:1 hybrid's growth per token is exactly 1/4 of all-MLA's; decode timing runs.
#include <gtest/gtest.h>

#include "lmlab/lab/kimi.h"

using namespace lmlab;

namespace {
KimiDecodeShape small_shape() {
  KimiDecodeShape s;
  s.hidden = 32;
  s.layers = 4;
  s.heads = 2;
  s.intermediate = 64;
  s.vocab = 50;
  s.kv_lora_rank = 16;
  s.rope_dim = 4;
  return s;
}
}  // namespace

TEST(KimiCache, BytesPerLayerKind) {
  KimiDecodeShape s = small_shape();
  Transformer hybrid(kimi_decode_config(s, "KKKM", 4096), 1), mla(kimi_decode_config(s, "M", 4096), 1),
      mha(kimi_decode_config(s, "A", 4096), 1);
  auto filled = [](const Transformer& m, int64_t n) {
    CacheSet c = m.new_cache();
    fill_cache_random(m, c, n);
    return c;
  };
  const int64_t L = 100;
  CacheSet h = filled(hybrid, L), a = filled(mla, L), f = filled(mha, L);
  EXPECT_EQ(h.length(), L);
  // all MLA: 4 layers x (16 + 4) floats per token
  EXPECT_EQ(cache_bytes_of_kind(mla, a, "mla"), size_t(4 * L * 20 * 4));
  EXPECT_EQ(cache_bytes_of_kind(mla, a, "recurrent"), 0u);
  // full attention: 4 layers x K and V of 2 heads x 16
  EXPECT_EQ(cache_bytes_of_kind(mha, f, "kv"), size_t(4 * L * 2 * 2 * 16 * 4));
  // hybrid: 1 MLA layer in 4, plus 3 constant recurrent caches (state 2 x 16 x 16 + 3 tails of 3 x 32)
  EXPECT_EQ(cache_bytes_of_kind(hybrid, h, "mla"), size_t(L * 20 * 4));
  size_t rec = cache_bytes_of_kind(hybrid, h, "recurrent");
  EXPECT_EQ(rec, size_t(3 * (2 * 16 * 16 + 3 * 3 * 32) * 4));
  EXPECT_EQ(h.bytes(), rec + cache_bytes_of_kind(hybrid, h, "mla"));
  CacheSet h2 = filled(hybrid, 2 * L), a2 = filled(mla, 2 * L);
  EXPECT_EQ(4 * (h2.bytes() - h.bytes()), a2.bytes() - a.bytes());
  EXPECT_THROW(cache_bytes_of_kind(hybrid, h, "gqa"), ValueError);
}

TEST(KimiCache, DecodeTimingRunsToTheContext) {
  Transformer hybrid(kimi_decode_config(small_shape(), "KKKM", 4096), 1);
  DecodeTiming t = time_decode(hybrid, 64, 3, 1);
  EXPECT_EQ(t.context, 64);
  EXPECT_GT(t.ms_per_token, 0.0);
  EXPECT_EQ(t.cache_bytes, size_t(64 * 20 * 4 + 3 * (2 * 16 * 16 + 3 * 3 * 32) * 4));
  EXPECT_THROW(time_decode(hybrid, 4, 3, 1), ValueError);
}
