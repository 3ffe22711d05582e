// `lmlab tokenize`: the token ids (and token strings) a model's tokenizer gives for a text; the
// model is a .gguf file, a tokenizer.json, or anything `generate -m` accepts (its tokenizer.json).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/lmlab/commands.h"
#include "lmlab/infer/model_loader.h"
#include "lmlab/io/gguf.h"
#include "lmlab/models/gguf_tokenizer.h"

namespace fs = std::filesystem;

namespace lmlab::app {

namespace {

// Only the tokenizer is read: a .gguf's metadata (no tensor data is touched) or a tokenizer.json.
Tokenizer load_tokenizer(const std::string& model) {
  if (model.ends_with(".gguf")) {
    std::unique_ptr<Tokenizer> t = tokenizer_from_gguf(GgufFile::open(model));
    LMLAB_CHECK(t != nullptr, FormatError, "[tokenize] '", model, "' has no tokenizer metadata (tokenizer.ggml.tokens)");
    return std::move(*t);
  }
  if (fs::is_regular_file(model)) return Tokenizer::from_file(model);
  const std::string path = resolve_model_folder(model) + "/tokenizer.json";
  LMLAB_CHECK(fs::exists(path), IoError, "[tokenize] '", model, "' has no tokenizer.json (looked for ", path, ")");
  return Tokenizer::from_file(path);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids (and strings) of a text under a model's tokenizer");
  static std::string model, prompt;
  static bool ids_only = false, add_special = false, no_parse_special = false;
  cmd->add_option("-m,--model", model, "A .gguf file, a tokenizer.json, a model folder or runs/<id>")->required();
  cmd->add_option("-p,--prompt", prompt, "Text to tokenize")->required();
  cmd->add_flag("--ids-only", ids_only, "Print only the ids, space-separated on one line");
  cmd->add_flag("--add-special", add_special, "Apply the post-processing template (BOS/EOS as the tokenizer adds them)");
  cmd->add_flag("--no-parse-special", no_parse_special, "Treat special-token text in the prompt as plain text");
  cmd->callback([] {
    Tokenizer t = load_tokenizer(model);
    std::vector<int32_t> ids = t.encode(prompt, !no_parse_special);
    if (add_special) ids = t.post_process(std::move(ids));
    if (ids_only) {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
      return;
    }
    // Token strings are JSON-quoted so spaces, control bytes and partial UTF-8 stay visible.
    for (int32_t id : ids) {
      std::string s = t.id_to_token(id);
      std::string shown = nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      std::printf("%6d  %s\n", id, shown.c_str());
    }
    std::printf("%zu tokens\n", ids.size());
  });
}

}  // namespace lmlab::app
