// A model's chat template: where it is found, and rendering a conversation with it the way
// transformers' apply_chat_template does (the variables messages, tools, documents,
// add_generation_prompt, bos_token, eos_token and any extra keyword variables).
//
// Sources, first found wins (transformers' order):
//   HF folder: chat_template.jinja, then tokenizer_config.json "chat_template" (a string, or a list
//   of {"name", "template"}: the name asked for, else "tool_use" when tools are given and it exists,
//   else "default"), then chat_template.json {"chat_template": ...};
//   .gguf: the metadata key tokenizer.chat_template (and tokenizer.chat_template.<name>);
//   none: ChatML (<|im_start|>role\ncontent<|im_end|>\n), flagged as the default so callers warn.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmlab/chat/jinja.h"

namespace lmlab::chat {

struct ChatTemplate {
  std::string source;            // the template text
  std::string origin;            // where it came from, for messages ("tokenizer_config.json chat_template")
  std::string bos_token, eos_token;
  std::optional<std::string> pad_token, unk_token;
  bool is_default = false;       // the model has no template: ChatML is used
  // Named templates of a list-form chat_template (name -> text); source is the chosen one.
  std::vector<std::pair<std::string, std::string>> named;
};

// The ChatML template used for models without one.
const std::string& chatml_template();

// Reads the template of a model folder (config.json beside tokenizer files), a .gguf file, a
// tokenizer_config.json or a .jinja file. `name` picks a named template ("" = default rules);
// `with_tools` prefers "tool_use" among named templates, as transformers does.
ChatTemplate load_chat_template(const std::string& path, const std::string& name = "", bool with_tools = false);

// The template a model is used with: `template_file` when given (with the model's special tokens,
// which a template file does not carry), else the model's own (load_chat_template of the folder).
ChatTemplate model_chat_template(const std::string& model_path, const std::string& template_file);

// A conversation and the variables rendered with it.
struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  std::optional<nlohmann::ordered_json> tools;      // None when absent
  std::optional<nlohmann::ordered_json> documents;  // None when absent
  bool add_generation_prompt = false;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // other keyword variables
};

// Reads a --messages file: an array of messages, or an object with "messages" and optionally
// "tools", "documents" and other keys (extra variables). Throws ConfigError naming the problem.
ChatRequest chat_request_from_json(const nlohmann::ordered_json& j, const std::string& what);

// The rendered prompt. Throws jinja::TemplateError when the template fails or raises.
std::string render_chat(const jinja::Template& t, const ChatRequest& req, const std::string& bos_token,
                        const std::string& eos_token);
std::string render_chat(const ChatTemplate& ct, const ChatRequest& req);

}  // namespace lmlab::chat
