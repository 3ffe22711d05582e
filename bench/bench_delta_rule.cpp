// Gated delta rule (KDA) benchmark: training forward + backward of the op at B=1, T=2048, H=4,
// dk=dv=64, channel gates, f32 -- the chunked WY/UT form (ops/delta_rule/chunked.cpp) against the
// recurrent reference form (ops/delta_rule/delta_rule.cpp), run alternately so load hits both alike.
// Also: chunk sizes 16/32/64, forward only, and the decode step kernel over the same tokens.
// Prints median seconds per call (RESULT lines); bench/run.sh turns them into tokens/s.
// Run: OMP_NUM_THREADS=2 build/bin/bench_delta_rule
#include <cmath>
#include <cstdio>
#include <string>

#include "bench/bench_util.h"
#include "lmlab/lmlab.h"
#include "lmlab/ops/delta_rule/delta_rule.h"

using namespace lmlab;

int main(int argc, char** argv) {
  const int64_t B = 1, T = 2048, H = 4, D = 64;
  Generator gen(1);
  auto unit = [&](Tensor x) {  // L2-normalised rows, as the KDA layer feeds q and k
    NoGrad ng;
    Tensor n = sqrt(sum(mul(x, x), {-1}, true));
    return div(x, n).contiguous();
  };
  Tensor q = unit(Tensor::randn({B, T, H, D}, gen)).set_requires_grad();
  Tensor k = unit(Tensor::randn({B, T, H, D}, gen)).set_requires_grad();
  Tensor v = Tensor::randn({B, T, H, D}, gen).set_requires_grad();
  // KDA-like gates: g = -softplus(N(0,1)) * 0.1 (per-token decays between ~0.9 and 1), beta in (0, 1)
  Tensor g, beta;
  {
    NoGrad ng;
    g = mul(softplus(Tensor::randn({B, T, H, D}, gen)), -0.1).contiguous();
    beta = sigmoid(Tensor::randn({B, T, H}, gen)).contiguous();
  }
  g.set_requires_grad();
  beta.set_requires_grad();
  Tensor R = Tensor::randn({B, T, H, D}, gen);  // loss = sum(o * R)
  using Impl = DeltaRuleOptions::Impl;
  auto fwd_bwd = [&](Impl impl, int64_t chunk) {
    return [&, impl, chunk] {
      for (Tensor* t : {&q, &k, &v, &g, &beta}) t->zero_grad();
      DeltaRuleOptions o;
      o.impl = impl;
      o.chunk_size = chunk;
      sum(mul(gated_delta_rule(q, k, v, g, beta, Tensor(), o).o, R)).backward();
    };
  };
  auto fwd = [&](Impl impl, int64_t chunk) {
    return [&, impl, chunk] {
      NoGrad ng;
      DeltaRuleOptions o;
      o.impl = impl;
      o.chunk_size = chunk;
      gated_delta_rule(q, k, v, g, beta, Tensor(), o);
    };
  };
  // `bench_delta_rule chunked`: only the chunked forward + backward, for profilers.
  if (argc > 1 && std::string(argv[1]) == "chunked") {
    bench::result("delta_rule_chunked_fwd_bwd_T2048", bench::median_time(fwd_bwd(Impl::Chunked, 64), 1, 20), "s");
    return 0;
  }
  auto [tc, tr] = bench::median_time_pair(fwd_bwd(Impl::Chunked, 64), fwd_bwd(Impl::Recurrent, 64), 1, 5);
  bench::result("delta_rule_chunked_fwd_bwd_T2048", tc, "s");
  bench::result("delta_rule_recurrent_fwd_bwd_T2048", tr, "s");
  for (int64_t C : {16, 32})
    bench::result(("delta_rule_chunked_C" + std::to_string(C) + "_fwd_bwd_T2048").c_str(),
                  bench::median_time(fwd_bwd(Impl::Chunked, C), 1, 5), "s");
  auto [fc, fr] = bench::median_time_pair(fwd(Impl::Chunked, 64), fwd(Impl::Recurrent, 64), 1, 5);
  bench::result("delta_rule_chunked_fwd_T2048", fc, "s");
  bench::result("delta_rule_recurrent_fwd_T2048", fr, "s");
  // Decode: the same T tokens one at a time through the in-place step kernel.
  {
    NoGrad ng;
    Tensor state = Tensor::zeros({B, H, D, D});
    std::vector<Tensor> qs, ks, vs, gs, bs;
    for (int64_t t = 0; t < T; ++t) {
      qs.push_back(q.narrow(1, t, 1).contiguous());
      ks.push_back(k.narrow(1, t, 1).contiguous());
      vs.push_back(v.narrow(1, t, 1).contiguous());
      gs.push_back(g.narrow(1, t, 1).contiguous());
      bs.push_back(beta.narrow(1, t, 1).contiguous());
    }
    double ts = bench::median_time(
        [&] {
          for (int64_t t = 0; t < T; ++t)
            gated_delta_rule_step(qs[size_t(t)], ks[size_t(t)], vs[size_t(t)], gs[size_t(t)], bs[size_t(t)], state);
        },
        1, 5);
    bench::result("delta_rule_step_T2048", ts, "s");
  }
  return 0;
}
