// Fused attention benchmark: forward + backward of causal f32 attention at B=4, H=8, T=1024, D=64
// (FlashAttention-2 tiles, ops/cpu/attention.cpp). Peer: bench/peer_attention.py (PyTorch with explicit
// matmul + masked softmax). Prints the median seconds per forward+backward and the peak scratch bytes.
// Run: OMP_NUM_THREADS=2 build/bin/bench_attention
#include <algorithm>
#include <cstdio>

#include "bench/bench_util.h"
#include "lmlab/lmlab.h"

using namespace lmlab;

int main() {
  const int64_t B = 4, H = 8, T = 1024, D = 64;
  Generator g(1);
  Tensor q = Tensor::randn({B, H, T, D}, g).set_requires_grad();
  Tensor k = Tensor::randn({B, H, T, D}, g).set_requires_grad();
  Tensor v = Tensor::randn({B, H, T, D}, g).set_requires_grad();
  Tensor R = Tensor::randn({B, H, T, D}, g);  // fixed projection: loss = sum(out * R), as the peer
  AttentionOptions opt;
  opt.causal = true;
  size_t peak = 0;
  auto step = [&] {
    for (Tensor* t : {&q, &k, &v}) t->zero_grad();
    Tensor out = attention(q, k, v, opt);
    size_t fwd = attention_last_workspace_bytes();
    sum(mul(out, R)).backward();
    peak = std::max({peak, fwd, attention_last_workspace_bytes()});
  };
  double t = bench::median_time(step, 2, 9);
  bench::result("attention_fwd_bwd_T1024", t, "s");
  bench::result("attention_peak_extra_bytes", double(peak), "bytes");
  return 0;
}
