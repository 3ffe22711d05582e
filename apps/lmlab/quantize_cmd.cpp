// `lmlab quantize IN.gguf OUT.gguf TYPE`: re-encodes a .gguf's weight matrices (lmlab/io/gguf_quantize.h).
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/core/parallel.h"
#include "lmlab/io/gguf_quantize.h"

namespace lmlab::app {

void register_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Quantize a .gguf file's weight matrices (q8_0, q4_0, q4_k, q6_k, f16, bf16)");
  struct Opts {
    std::string in, out, type, output_type;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IN", o->in, "Source .gguf (f32, f16, bf16 or already quantized)")->required();
  cmd->add_option("OUT", o->out, "Destination .gguf")->required();
  cmd->add_option("TYPE", o->type, "q8_0, q4_0, q4_k, q6_k, f16, bf16 or f32")->required();
  cmd->add_option("--output-type", o->output_type, "Type of the LM head (default: q6_k for 4-bit types, else TYPE)");
  cmd->add_option("-t,--threads", o->threads, "Threads (0 = all)");
  cmd->callback([o] {
    if (o->threads > 0) set_num_threads(o->threads);
    QuantizeOptions q;
    q.type = ggml_type_from_name(o->type);
    if (!o->output_type.empty()) q.output_type = ggml_type_from_name(o->output_type);
    QuantizeReport r = gguf_quantize(o->in, o->out, q);
    for (const auto& n : r.notes) std::printf("note: %s\n", n.c_str());
    std::printf("wrote %s: %lld tensors (%lld re-encoded), %.1f MiB -> %.1f MiB\n", o->out.c_str(),
                (long long)r.tensors, (long long)r.requantized, double(r.bytes_in) / 1048576.0,
                double(r.bytes_out) / 1048576.0);
  });
}

}  // namespace lmlab::app
