// Fused attention (ops/attention.h): bad arguments raise the lmlab exception naming the op and the
// shapes; the fast tiled kernels match the `_ref` kernels on a problem spanning many tiles (outputs
// and every gradient); rows that see no key give zeros, not NaN; the workspace stays O(T) per head.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lmlab/lmlab.h"
#include "tests/test_util.h"
#include "lmlab/ops/cpu/attention_kernels.h"

using namespace lmlab;

namespace {

using lmlab::test::expect_error;

struct AttnRun {
  Tensor out, dq, dk, dv, dmask;
};

// attention(q, k, v) and the gradients of sum(out * R) for a fixed random R, in fast or reference mode.
AttnRun run_attention(const Tensor& q0, const Tensor& k0, const Tensor& v0, AttentionOptions o, bool reference,
        bool q_transposed = false) {
  ReferenceMode rm(reference);
  Tensor q = q0.detach().clone().set_requires_grad(), k = k0.detach().clone().set_requires_grad(),
         v = v0.detach().clone().set_requires_grad();
  if (o.mask.defined() && o.mask.requires_grad()) o.mask = o.mask.detach().clone().set_requires_grad();
  Tensor out = attention(q_transposed ? q.transpose(1, 2) : q, k, v, o);
  Generator g(7);
  Tensor R = Tensor::randn(out.shape(), g, out.dtype());
  sum(mul(out, R)).backward();
  return {out.detach(), q.grad(), k.grad(), v.grad(), o.mask.defined() ? o.mask.grad() : Tensor()};
}

void expect_close(const AttnRun& a, const AttnRun& b, double atol, double rtol) {
  const std::pair<const char*, std::pair<Tensor, Tensor>> pairs[] = {
      {"out", {a.out, b.out}}, {"dq", {a.dq, b.dq}}, {"dk", {a.dk, b.dk}}, {"dv", {a.dv, b.dv}},
      {"dmask", {a.dmask, b.dmask}}};
  for (const auto& [name, t] : pairs) {
    auto r = compare(name, t.first, t.second, atol, rtol);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

}  // namespace

TEST(AttentionErrors, BadRank) {
  Tensor q = Tensor::zeros({2, 5, 8}), k = Tensor::zeros({1, 2, 5, 8}), v = Tensor::zeros({1, 2, 5, 8});
  expect_error<ShapeError>([&] { attention(q, k, v); }, "[attention] q must be [B, Hq, T, D], got [2, 5, 8]");
  expect_error<ShapeError>([&] { attention(k, k.select(0, 0), v); }, "[attention] k must be [B, Hkv, S, D]");
}

TEST(AttentionErrors, HeadDimMismatch) {
  Tensor q = Tensor::zeros({1, 2, 5, 8}), k = Tensor::zeros({1, 2, 7, 4}), v = Tensor::zeros({1, 2, 7, 8});
  expect_error<ShapeError>([&] { attention(q, k, v); },
                           "[attention] head dim D of q and k differ: q [1, 2, 5, 8], k [1, 2, 7, 4]");
  Tensor k2 = Tensor::zeros({1, 2, 7, 8}), v2 = Tensor::zeros({1, 2, 6, 8});
  expect_error<ShapeError>([&] { attention(q, k2, v2); }, "disagree on Hkv or S");
}

TEST(AttentionErrors, HeadsNotDivisible) {
  Tensor q = Tensor::zeros({1, 3, 5, 8}), k = Tensor::zeros({1, 2, 5, 8}), v = Tensor::zeros({1, 2, 5, 8});
  expect_error<ShapeError>([&] { attention(q, k, v); }, "[attention] query heads Hq=3 must be a multiple of kv heads Hkv=2");
}

TEST(AttentionErrors, UnsupportedDType) {
  Tensor q = Tensor::zeros({1, 2, 5, 8}, DType::BF16), k = Tensor::zeros({1, 2, 5, 8}, DType::BF16);
  expect_error<DTypeError>([&] { attention(q, k, k); }, "[attention] argument 'q' has unsupported dtype bf16");
  Tensor qi = Tensor::zeros({1, 2, 5, 8}, DType::I64);
  expect_error<DTypeError>([&] { attention(qi, qi, qi); }, "[attention] argument 'q' has unsupported dtype i64");
  Tensor f = Tensor::zeros({1, 2, 5, 8}), d = Tensor::zeros({1, 2, 5, 8}, DType::F64);
  expect_error<DTypeError>([&] { attention(f, d, f); }, "[attention] dtype mismatch");
  AttentionOptions o;
  o.mask = Tensor::zeros({5, 5}, DType::F64);
  expect_error<DTypeError>([&] { attention(f, f, f, o); }, "[attention] dtype mismatch");
}

TEST(AttentionErrors, MaskNotBroadcastable) {
  Tensor q = Tensor::zeros({2, 2, 5, 8}), k = Tensor::zeros({2, 2, 7, 8});
  AttentionOptions o;
  o.mask = Tensor::zeros({5, 6});
  expect_error<ShapeError>([&] { attention(q, k, k, o); },
                           "[attention] mask [5, 6] is not broadcastable to [B, Hq, T, S] = [2, 2, 5, 7]");
  o.mask = Tensor::zeros({3, 1, 5, 7});
  expect_error<ShapeError>([&] { attention(q, k, k, o); }, "mask [3, 1, 5, 7] is not broadcastable");
  o.mask = Tensor::zeros({1, 2, 2, 5, 7});
  expect_error<ShapeError>([&] { attention(q, k, k, o); }, "is not broadcastable");
}

TEST(AttentionErrors, BadWindow) {
  Tensor q = Tensor::zeros({1, 2, 5, 8});
  AttentionOptions o;
  o.causal = true;
  o.window = -1;
  expect_error<ValueError>([&] { attention(q, q, q, o); }, "[attention] window must be >= 0");
  o.causal = false;
  o.window = 3;
  expect_error<ValueError>([&] { attention(q, q, q, o); }, "needs causal=true");
}

// Many 64 x 64 tiles, partial edge tiles, causal skipping: fast f32 against the double reference.
TEST(AttentionFast, MatchesReferenceLargeCausal) {
  Generator g(11);
  Tensor q = Tensor::randn({1, 2, 300, 32}, g), k = Tensor::randn({1, 2, 300, 32}, g),
         v = Tensor::randn({1, 2, 300, 32}, g);
  AttentionOptions o;
  o.causal = true;
  expect_close(run_attention(q, k, v, o, false), run_attention(q, k, v, o, true), 1e-4, 0);
}

// GQA, a window, a broadcast mask and decode-like T < S, with a non-contiguous q, at default tiles and
// with forced dQ splits and small tiles.
TEST(AttentionFast, MatchesReferenceGqaWindowMask) {
  Generator g(12);
  Tensor q = Tensor::randn({2, 150, 4, 16}, g), k = Tensor::randn({2, 2, 200, 16}, g),
         v = Tensor::randn({2, 2, 200, 24}, g);
  AttentionOptions o;
  o.causal = true;
  o.window = 90;
  o.mask = mul(Tensor::randn({2, 1, 150, 200}, g), 0.5);
  AttnRun ref = run_attention(q, k, v, o, true, true);
  expect_close(run_attention(q, k, v, o, false, true), ref, 1e-4, 0);
  for (cpu::AttentionBlocks b : {cpu::AttentionBlocks{16, 8, 3}, cpu::AttentionBlocks{5, 7, 0}}) {
    cpu::ScopedAttentionBlocks sb(b);
    expect_close(run_attention(q, k, v, o, false, true), ref, 1e-4, 0);
  }
  o.mask = o.mask.detach().clone().set_requires_grad();  // mask gradient: the reference backward
  expect_close(run_attention(q, k, v, o, false, true), run_attention(q, k, v, o, true, true), 1e-4, 0);
}

TEST(AttentionFast, RowsWithoutKeysAreZero) {
  Generator g(13);
  // causal with T > S: the first T - S queries see no key
  Tensor q = Tensor::randn({1, 1, 6, 8}, g), k = Tensor::randn({1, 1, 2, 8}, g), v = Tensor::randn({1, 1, 2, 8}, g);
  AttentionOptions o;
  o.causal = true;
  for (bool reference : {false, true}) {
    AttnRun r = run_attention(q, k, v, o, reference);
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t e = 0; e < 8; ++e) {
        std::vector<int64_t> idx = {0, 0, i, e};
        EXPECT_EQ(r.out.at(idx), 0.0);
        EXPECT_EQ(r.dq.at(idx), 0.0);
      }
    for (double x : r.dk.to_vector<double>()) EXPECT_TRUE(std::isfinite(x));
    for (double x : r.out.to_vector<double>()) EXPECT_TRUE(std::isfinite(x));
  }
}

TEST(AttentionFast, WorkspaceIsPerTile) {
  const int64_t T = 1024;
  Generator g(14);
  Tensor q = Tensor::randn({1, 2, T, 64}, g).set_requires_grad(), k = Tensor::randn({1, 2, T, 64}, g),
         v = Tensor::randn({1, 2, T, 64}, g);
  AttentionOptions o;
  o.causal = true;
  Tensor out = attention(q, k, v, o);
  size_t fwd = attention_last_workspace_bytes();
  sum(mul(out, Tensor::randn(out.shape(), g))).backward();  // a contiguous dO (sum() would give a stride-0 one)
  size_t bwd = attention_last_workspace_bytes();
  const size_t tt = size_t(T * T * 4);
  EXPECT_GT(fwd, 0u);
  EXPECT_GT(bwd, 0u);
  EXPECT_LT(fwd, tt / 16) << "forward scratch " << fwd << " bytes";
  EXPECT_LT(bwd, tt / 4) << "backward scratch " << bwd << " bytes";
}
