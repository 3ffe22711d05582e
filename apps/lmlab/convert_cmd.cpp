// `lmlab convert IN OUT [--type f32|f16|bf16]`: a Hugging Face model folder -> .gguf, or a .gguf ->
// folder, decided by the extensions (lmlab/models/gguf_model.h; llama.cpp's GGUF tensor layout).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "apps/lmlab/commands.h"
#include "lmlab/core/error.h"
#include "lmlab/models/gguf_model.h"

namespace lmlab::app {

void register_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Convert an HF model folder (Llama, Mistral, Qwen2, Qwen3, Qwen3-MoE) to .gguf or a .gguf to a folder");
  struct Opts {
    std::string in, out, type;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IN", o->in, "Model folder (config.json, model.safetensors) or .gguf file")->required();
  cmd->add_option("OUT", o->out, ".gguf file (from a folder) or output folder (from a .gguf)")->required();
  cmd->add_option("--type", o->type, "Tensor type of the .gguf: f32, f16 or bf16 (default: as the source)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  cmd->callback([o] {
    auto is_gguf = [](const std::string& p) { return p.size() > 5 && p.ends_with(".gguf"); };
    if (is_gguf(o->in)) {
      LMLAB_CHECK(!is_gguf(o->out), ValueError, "[convert] OUT '", o->out, "' must be a folder when IN is a .gguf");
      LMLAB_CHECK(o->type.empty(), ValueError, "[convert] --type applies only when writing a .gguf");
      gguf_to_hf_folder(o->in, o->out);
    } else {
      LMLAB_CHECK(is_gguf(o->out), ValueError, "[convert] OUT '", o->out, "' must end in .gguf when IN is a folder");
      std::optional<GgmlType> t;
      if (o->type == "f32") t = GgmlType::F32;
      if (o->type == "f16") t = GgmlType::F16;
      if (o->type == "bf16") t = GgmlType::BF16;
      hf_folder_to_gguf(o->in, o->out, t);
    }
    std::printf("wrote %s\n", o->out.c_str());
  });
}

}  // namespace lmlab::app
