// The decoding attention kernel (few queries over strided cache views, no copy) against the
// reference, with GQA, windows, masks and batch/head strides like a KV cache's.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"
#include "lmlab/ops/cpu/attention_kernels.h"

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

// Query heads sharing one kv head (GQA 2:1 and 8:1, and MQA over one latent whose first channels
// are the values, as MLA's absorbed decode reads its cache): the grouped kernel against the
// reference and against the tiled kernel, with several key tiles and key splits (merged by their row
// maxima), a row that sees no key in a whole split, windows, masks, and batch/head/row strides of a cache.
TEST(AttentionDecode, GroupedHeadsMatchReferenceAndTiledKernel) {
  Generator g(22);
  struct Case {
    int64_t Hq, Hkv;
    bool shared_latent;  // v = k[..., :Dv] (row stride D + extra)
  };
  for (Case cs : {Case{4, 2, false}, Case{8, 1, false}, Case{8, 1, true}}) {
    for (int64_t T : {1, 3}) {
      for (int64_t window : {0, 9}) {
        for (int64_t splits : {1, 3}) {
          const int64_t B = 2, D = 20, Dv = cs.shared_latent ? 16 : 12, cap = 96, S = 61;
          Tensor kc = Tensor::randn({B, cs.Hkv, cap, D}, g), vc = Tensor::randn({B, cs.Hkv, cap, Dv}, g);
          Tensor k = kc.narrow(2, 0, S);
          Tensor v = cs.shared_latent ? k.narrow(3, 0, Dv) : vc.narrow(2, 0, S);
          Tensor q = Tensor::randn({B, T, cs.Hq, D}, g).transpose(1, 2);  // [B, Hq, T, D] from [B, T, H, D]
          std::vector<float> m(size_t(B * cs.Hq * T * S), 0.0f);
          // batch 0, head 0, row 0 masks its first 30 keys: with 3 splits, the first split sees none of them
          for (int64_t j = 0; j < 30; ++j) m[size_t(j)] = -INFINITY;
          AttentionOptions o;
          o.causal = true;
          o.window = window;
          o.mask = Tensor::from_vector(m, {B, cs.Hq, T, S});
          std::string name = "Hq=" + std::to_string(cs.Hq) + " Hkv=" + std::to_string(cs.Hkv) +
                             (cs.shared_latent ? " latent" : "") + " T=" + std::to_string(T) +
                             " window=" + std::to_string(window) + " splits=" + std::to_string(splits);
          cpu::AttentionParams p;  // the fields the dispatch reads
          p.B = B, p.Hq = cs.Hq, p.Hkv = cs.Hkv, p.T = T, p.S = S, p.D = D, p.Dv = Dv;
          ASSERT_TRUE(cpu::attention_decode_supported(q, k, v, p)) << name;
          Tensor tiled;
          {
            // the tiled FlashAttention kernel (the training path): taken when a gradient is wanted
            Tensor qg = q.contiguous().set_requires_grad();
            tiled = attention(qg, k, v, o).detach();
          }
          NoGrad ng;
          Tensor fast, ref;
          {
            cpu::ScopedAttentionBlocks sb({16, 8, splits});  // key tiles of 8 keys (the last one short)
            fast = attention(q, k, v, o);
          }
          {
            ReferenceMode rm;
            ref = attention(q, k, v, o);
          }
          auto r = compare(name + " vs reference", fast, ref, 1e-5, 1e-4);
          EXPECT_TRUE(r.ok) << r.message;
          auto r2 = compare(name + " vs tiled", fast, tiled, 1e-5, 1e-4);
          EXPECT_TRUE(r2.ok) << r2.message;
        }
      }
    }
  }
}

// A broadcast key view (row stride 0) is not handed to the grouped kernel's GEMMs; the result is the same.
TEST(AttentionDecode, GroupedHeadsOverBroadcastKeys) {
  Generator g(23);
  const int64_t B = 1, Hq = 4, D = 8, S = 10;
  Tensor k = Tensor::randn({B, 1, 1, D}, g).expand({B, 1, S, D});
  Tensor v = Tensor::randn({B, 1, S, D}, g);
  Tensor q = Tensor::randn({B, Hq, 1, D}, g);
  AttentionOptions o;
  o.causal = true;
  NoGrad ng;
  Tensor fast = attention(q, k, v, o);
  Tensor ref;
  {
    ReferenceMode rm;
    ref = attention(q, k, v, o);
  }
  auto r = compare("broadcast keys", fast, ref, 1e-5, 1e-4);
  EXPECT_TRUE(r.ok) << r.message;
}
