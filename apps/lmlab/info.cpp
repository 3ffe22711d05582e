// `lmlab info`: the build and the machine as lmlab sees them (threads, kernels chosen).
#include <cstdio>
#include <string>

#include "apps/lmlab/commands.h"
#include "lmlab/core/parallel.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/qmatmul.h"

namespace lmlab::app {

void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print build configuration, thread count, the bf16 GEMM path (and why) and the quantized kernels");
  cmd->callback([] {
    std::printf("lmlab\n  threads: %d\n", num_threads());
    const auto& p = cpu::bf16_gemm_path();
    if (p.onednn)
      std::printf("  bf16 GEMM: oneDNN, kernel %s (%s)\n", p.impl.c_str(), p.why.c_str());
    else
      std::printf("  bf16 GEMM: f32 on OpenBLAS over widened operands (%s)\n", p.why.c_str());
    std::string sets;
    for (const std::string& s : cpu::qgemm_isas()) sets += (sets.empty() ? "" : ", ") + s;
    std::printf("  quantized matmul kernels: %s (this CPU runs: %s; LMLAB_QGEMM_ISA picks one)\n", cpu::qgemm_isa(),
                sets.c_str());
  });
}

}  // namespace lmlab::app
