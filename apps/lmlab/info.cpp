// `lmlab info`: the build and the machine as lmlab sees them (threads, kernels chosen).
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/core/parallel.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/qmatmul.h"
#include "lmlab/core/rng.h"
#include "lmlab/core/tensor.h"

namespace lmlab::app {

void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print build configuration, thread count and the bf16 GEMM kernel");
  cmd->callback([] {
    std::printf("lmlab\n  threads: %d\n", num_threads());
    Generator g(1);
    Tensor a = Tensor::randn({64, 64}, g).to(DType::BF16);
    Tensor c = matmul(a, a);
    std::printf("  bf16 matmul kernel (oneDNN): %s\n", cpu::onednn_last_impl());
    std::string sets;
    for (const std::string& s : cpu::qgemm_isas()) sets += (sets.empty() ? "" : ", ") + s;
    std::printf("  quantized matmul kernels: %s (this CPU runs: %s; LMLAB_QGEMM_ISA picks one)\n", cpu::qgemm_isa(),
                sets.c_str());
  });
}

}  // namespace lmlab::app
