// The decoding attention kernel (few queries over strided cache views, no copy) against the
// reference, with GQA, windows, masks and batch/head strides like a KV cache's.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"

using namespace lmlab;

TEST(AttentionDecode, MatchesReferenceOnCacheViews) {
  Generator g(21);
  for (int64_t T : {1, 3}) {
    for (int64_t window : {0, 5}) {
      const int64_t B = 2, Hq = 4, Hkv = 2, D = 16, cap = 64, S = 37;
      Tensor kc = Tensor::randn({B, Hkv, cap, D}, g), vc = Tensor::randn({B, Hkv, cap, D}, g);
      Tensor k = kc.narrow(2, 0, S), v = vc.narrow(2, 0, S);  // strided like KVCache::append's views
      Tensor q = Tensor::randn({B, T, Hq, D}, g).transpose(1, 2);  // [B, Hq, T, D] from [B, T, H, D]
      std::vector<float> m(size_t(B * T * S), 0.0f);
      for (int64_t j = 0; j < 3; ++j) m[size_t(j)] = -INFINITY;  // row 0 of batch 0 masks 3 keys
      AttentionOptions o;
      o.causal = true;
      o.window = window;
      o.mask = Tensor::from_vector(m, {B, 1, T, S});
      NoGrad ng;
      Tensor fast = attention(q, k, v, o);
      Tensor ref;
      {
        ReferenceMode rm;
        ref = attention(q, k, v, o);
      }
      auto r = compare("decode T=" + std::to_string(T), fast, ref, 1e-5, 1e-4);
      EXPECT_TRUE(r.ok) << r.message;
    }
  }
}
