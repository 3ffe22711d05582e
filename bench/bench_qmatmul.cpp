// Quantized products (ops/qmatmul.h), Google Benchmark, 2 threads (LMLAB_BENCH_THREADS=n to change).
// Per weight type:
//   decode   M = 1:   GB/s of weight bytes streamed (N = K = 768 and N = 2048, K = 768: cache-warm;
//                     "cold": a 128-matrix ring of N = 2048, K = 768 per type, more bytes than the
//                     L2s hold, so weights come from L3 / memory as in a 100M-parameter model;
//                     q8_0x16: the same in the interleaved 16-row Q8_0 layout models load into);
//   prefill  M = 512: GOP/s (2 M N K / s), integer kernels ("int") and bf16 panels + oneDNN ("dense");
//   threshold sweep:  Q4_K / Q8_0, N = 2048, K = 768, M = 2 .. 128 on both paths (picks
//                     kDenseMinRows in ops/cpu/qmatmul.cpp).
// f32 rows are the dense baseline: OpenBLAS sgemm for M > 1, the f32 dot kernel for M = 1.
// The label names the kernel set (LMLAB_QGEMM_ISA=avx2 / portable runs another one this CPU has).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "lmlab/lmlab.h"
#include "lmlab/ops/qmatmul.h"

using namespace lmlab;

namespace {

enum class Path { Default, Int, Dense };

struct Shape3 {
  int64_t M, N, K;
};

// `ring` separate copies of one quantized matrix, built once per configuration (Google Benchmark
// calls a function several times while it settles the iteration count).
// `interleaved`: the Q8_0 16-row layout models use (QMatrix::interleaved).
const std::vector<QMatrix>& weights(GgmlType t, int64_t N, int64_t K, int ring, bool interleaved) {
  static std::map<std::tuple<GgmlType, int64_t, int64_t, int, bool>, std::vector<QMatrix>> cache;
  auto& ws = cache[{t, N, K, ring, interleaved}];
  if (ws.empty()) {
    Generator g(1);
    QMatrix q = QMatrix::quantize(mul(Tensor::randn({N, K}, g), Tensor::scalar(0.05)), t);
    for (int i = 0; i < ring; ++i) ws.push_back(interleaved ? q.interleaved() : QMatrix::concat_rows({&q}));
  }
  return ws;
}

int g_threads = 2;

void run(benchmark::State& st, GgmlType t, Shape3 s, Path path, int ring, bool interleaved) {
  set_num_threads(g_threads);
  const int64_t def = cpu::qgemm_set_dense_min_rows(1);
  cpu::qgemm_set_dense_min_rows(path == Path::Int ? int64_t(1) << 40 : path == Path::Dense ? 1 : def);
  const std::vector<QMatrix>& ws = weights(t, s.N, s.K, ring, interleaved);
  Generator g(2);
  Tensor x = Tensor::randn({s.M, s.K}, g);
  std::vector<float> y(size_t(s.M * s.N));
  size_t i = 0;
  for (auto _ : st) {
    cpu::qgemm(ws[i], x.data<float>(), s.M, s.K, y.data(), s.N);
    benchmark::DoNotOptimize(y.data());
    i = (i + 1) % ws.size();
  }
  cpu::qgemm_set_dense_min_rows(def);
  const double n = double(st.iterations());
  st.counters["GB/s"] = benchmark::Counter(n * double(ws[0].nbytes()) / 1e9, benchmark::Counter::kIsRate);
  st.counters["GOP/s"] =
      benchmark::Counter(n * 2.0 * double(s.M * s.N * s.K) / 1e9, benchmark::Counter::kIsRate);
  st.SetLabel(cpu::qgemm_isa());
}

void add(const std::string& name, GgmlType t, Shape3 s, Path path, int ring = 1, bool interleaved = false) {
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { run(st, t, s, path, ring, interleaved); })
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* e = std::getenv("LMLAB_BENCH_THREADS")) g_threads = std::max(1, std::atoi(e));
  const GgmlType types[] = {GgmlType::F32, GgmlType::BF16, GgmlType::F16, GgmlType::Q8_0,
                            GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q6_K};
  const Shape3 shapes[] = {{1, 768, 768}, {1, 2048, 768}};
  for (GgmlType t : types) {
    std::string tn = ggml_type_name(t);
    for (Shape3 s : shapes)
      add("decode/" + tn + "/N" + std::to_string(s.N) + "_K" + std::to_string(s.K), t, s, Path::Default);
    add("decode_cold/" + tn + "/N2048_K768", t, {1, 2048, 768}, Path::Default, 128);
    if (t == GgmlType::Q8_0)
      add("decode_cold/q8_0x16/N2048_K768", t, {1, 2048, 768}, Path::Default, 128, /*interleaved=*/true);
    for (Shape3 s : {Shape3{512, 768, 768}, Shape3{512, 2048, 768}}) {
      std::string sh = "/N" + std::to_string(s.N) + "_K" + std::to_string(s.K);
      if (ggml_is_quantized(t)) {
        add("prefill_int/" + tn + sh, t, s, Path::Int);
        add("prefill_dense/" + tn + sh, t, s, Path::Dense);
      } else {
        add("prefill/" + tn + sh, t, s, Path::Default);
      }
    }
  }
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q8_0})
    for (int64_t M : {2, 4, 8, 16, 32, 64, 128}) {
      std::string nm = std::string("/") + ggml_type_name(t) + "/M" + std::to_string(M);
      add("threshold_int" + nm, t, {M, 2048, 768}, Path::Int);
      add("threshold_dense" + nm, t, {M, 2048, 768}, Path::Dense);
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
