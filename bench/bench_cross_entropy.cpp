// Benchmark: fused cross-entropy forward + backward over N = 4096 rows x V = 32000 classes, f32
// (a 32k-vocabulary LM head on 4096 tokens). Prints `RESULT cross_entropy_V32k <median s> s`;
// the peer is torch.nn.functional.cross_entropy (bench/peer_cross_entropy.py), compared by bench/run.sh.
#include <cstdio>
#include <vector>

#include "bench/bench_util.h"
#include "lmlab/lmlab.h"

using namespace lmlab;

int main() {
  const int64_t N = 4096, V = 32000;
  Generator g(0);
  Tensor logits = Tensor::randn({N, V}, g);  // [N, V]
  {
    NoGrad ng;
    logits = mul(logits, 2.0);
  }
  logits.set_requires_grad();
  std::vector<int64_t> t(static_cast<size_t>(N));
  for (auto& v : t) v = g.randint(0, V);
  Tensor target = Tensor::from_vector(t);  // [N]

  double loss = 0;
  auto step = [&] {
    logits.zero_grad();
    Tensor l = cross_entropy(logits, target);
    l.backward();
    loss = l.item();
  };
  double fwd = bench::median_time([&] { NoGrad ng; cross_entropy(logits, target); }, 1, 5);
  double s = bench::median_time(step, 2, 9);
  bench::result("cross_entropy_V32k", s, "s");
  std::fprintf(stderr, "INFO lmlab threads %d, loss %.6f, forward only %.4f s, forward+backward %.4f s\n",
               num_threads(), loss, fwd, s);
  return 0;
}
