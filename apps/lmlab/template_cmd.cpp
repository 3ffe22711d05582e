// `lmlab template`: renders a conversation with a model's chat template (or a template file) and
// prints the prompt exactly as transformers' apply_chat_template would produce it.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/lmlab/commands.h"
#include "lmlab/chat/chat_template.h"
#include "lmlab/infer/model_loader.h"

namespace fs = std::filesystem;

namespace lmlab::app {

namespace {

nlohmann::ordered_json read_json_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  LMLAB_CHECK(f.good(), IoError, "[template] cannot read ", what, " file '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::ordered_json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[template] ", what, " file '", path, "' is not valid JSON: ", e.what()));
  }
}

}  // namespace

void register_template(CLI::App& app) {
  auto* cmd = app.add_subcommand("template", "Render a conversation with a model's chat template and print the prompt");
  static std::string model, template_file, messages_file, tools_file, bos, eos, name;
  static bool add_gen = false, bos_set = false, eos_set = false;
  static std::vector<std::string> vars;
  auto* m = cmd->add_option("-m,--model", model, "Model folder, runs/<id>, .gguf, or a tokenizer_config.json");
  auto* t = cmd->add_option("--template", template_file, "A Jinja template file (instead of a model's)");
  m->excludes(t);
  cmd->add_option("--messages", messages_file,
                  "JSON file: an array of messages, or {\"messages\": [...], \"tools\": [...], other variables}")
      ->required();
  cmd->add_option("--tools", tools_file, "JSON file with the tool definitions (an array)");
  cmd->add_flag("--add-generation-prompt", add_gen, "End with the assistant turn's header");
  cmd->add_option("--bos-token", bos, "bos_token (default: the model's)")->each([](const std::string&) { bos_set = true; });
  cmd->add_option("--eos-token", eos, "eos_token (default: the model's)")->each([](const std::string&) { eos_set = true; });
  cmd->add_option("--name", name, "Pick a named template (list-form chat_template, e.g. tool_use)");
  cmd->add_option("--var", vars, "Extra template variable NAME=JSON (e.g. enable_thinking=false)");
  cmd->callback([] {
    LMLAB_CHECK(!model.empty() || !template_file.empty(), ConfigError, "[template] give -m MODEL or --template FILE");
    chat::ChatRequest req = chat::chat_request_from_json(read_json_file(messages_file, "messages"), messages_file);
    if (!tools_file.empty()) {
      auto tools = read_json_file(tools_file, "tools");
      LMLAB_CHECK(tools.is_array() || tools.is_null(), ConfigError, "[template] tools file '", tools_file,
                  "' must hold a JSON array");
      if (tools.is_null()) req.tools.reset();
      else req.tools = tools;
    }
    req.add_generation_prompt = req.add_generation_prompt || add_gen;
    for (const std::string& v : vars) {
      size_t eq = v.find('=');
      LMLAB_CHECK(eq != std::string::npos && eq > 0, ConfigError, "[template] --var expects NAME=JSON, got '", v, "'");
      try {
        req.extra[v.substr(0, eq)] = nlohmann::ordered_json::parse(v.substr(eq + 1));
      } catch (const nlohmann::json::exception&) {
        req.extra[v.substr(0, eq)] = v.substr(eq + 1);  // a bare word is a string
      }
    }
    chat::ChatTemplate ct;
    if (!template_file.empty()) {
      ct = chat::load_chat_template(template_file);
    } else {
      std::string path = model;
      if (fs::is_directory(path) && !fs::exists(fs::path(path) / "tokenizer_config.json") &&
          !fs::exists(fs::path(path) / "chat_template.jinja"))
        path = resolve_model_folder(path);  // runs/<id>: its last checkpoint
      ct = chat::load_chat_template(path, name, req.tools.has_value());
      if (ct.is_default)
        std::fprintf(stderr, "lmlab: warning: '%s' has no chat template; using the default (ChatML)\n", model.c_str());
    }
    if (bos_set) ct.bos_token = bos;
    if (eos_set) ct.eos_token = eos;
    std::string out = chat::render_chat(ct, req);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  });
}

}  // namespace lmlab::app
