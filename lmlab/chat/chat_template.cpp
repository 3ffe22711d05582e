// Finding a model's chat template and rendering conversations with it.
#include "lmlab/chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "lmlab/core/error.h"
#include "lmlab/io/gguf.h"
#include "lmlab/io/hf.h"

namespace fs = std::filesystem;

namespace lmlab::chat {

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  LMLAB_CHECK(f.good(), IoError, "[chat] cannot read '", p.string(), "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Picks among named templates (the list form of chat_template): an explicit name, else tool_use
// when tools are given, else the default. `fallback` is the config's default (named "default").
void choose(ChatTemplate& ct, const HfTokenizerConfig& c, const std::string& name, bool with_tools,
            const std::string& where) {
  for (const auto& [k, v] : c.chat_templates) ct.named.emplace_back(k, v);
  std::string names;
  for (const auto& [k, v] : c.chat_templates) names += (names.empty() ? "" : ", ") + k;
  if (!name.empty()) {
    auto it = c.chat_templates.find(name);
    LMLAB_CHECK(it != c.chat_templates.end(), ConfigError, "[chat] ", where, " has no chat template named '", name,
                "'", names.empty() ? std::string(" (it has one, unnamed)") : " (it has: " + names + ")");
    ct.source = it->second;
    ct.origin += " '" + name + "'";
    return;
  }
  if (with_tools && c.chat_templates.count("tool_use")) {
    ct.source = c.chat_templates.at("tool_use");
    ct.origin += " 'tool_use'";
    return;
  }
  LMLAB_CHECK(c.chat_template.has_value(), ConfigError, "[chat] ", where,
              " has several chat templates and none named 'default' (it has: ", names, "); pick one with --name");
  ct.source = *c.chat_template;
  if (!c.chat_templates.empty()) ct.origin += " 'default'";
}

HfTokenizerConfig parse_config(const fs::path& p) {
  return HfTokenizerConfig::parse(read_text(p), p.string());
}

void take_tokens(ChatTemplate& ct, const HfTokenizerConfig& c) {
  ct.bos_token = c.bos_token.value_or("");
  ct.eos_token = c.eos_token.value_or("");
  ct.pad_token = c.pad_token;
  ct.unk_token = c.unk_token;
}

ChatTemplate default_template(const std::string& bos, const std::string& eos) {
  ChatTemplate ct;
  ct.source = chatml_template();
  ct.origin = "default (ChatML)";
  ct.is_default = true;
  ct.bos_token = bos;
  ct.eos_token = eos;
  return ct;
}

ChatTemplate from_gguf(const std::string& path, const std::string& name, bool with_tools) {
  GgufFile g = GgufFile::open(path);
  std::string bos, eos;
  if (g.has("tokenizer.ggml.tokens")) {
    const auto& toks = g.get_array("tokenizer.ggml.tokens");
    auto text = [&](const char* key) -> std::string {
      if (!g.has(key)) return "";
      int64_t id = g.get_int(key);
      if (id < 0 || size_t(id) >= toks.items.size()) return "";
      const auto* s = std::get_if<std::string>(&toks.items[size_t(id)].v);
      return s ? *s : "";
    };
    bos = text("tokenizer.ggml.bos_token_id");
    eos = text("tokenizer.ggml.eos_token_id");
  }
  std::string key = name.empty() ? "tokenizer.chat_template" : "tokenizer.chat_template." + name;
  if (name.empty() && with_tools && g.has("tokenizer.chat_template.tool_use")) key = "tokenizer.chat_template.tool_use";
  if (!g.has(key)) {
    LMLAB_CHECK(name.empty(), ConfigError, "[chat] '", path, "' has no chat template named '", name, "' (", key, ")");
    return default_template(bos, eos);
  }
  ChatTemplate ct;
  ct.source = g.get_string(key);
  ct.origin = "GGUF " + key;
  ct.bos_token = bos;
  ct.eos_token = eos;
  return ct;
}

}  // namespace

const std::string& chatml_template() {
  static const std::string t =
      "{% for message in messages %}"
      "{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '') + '<|im_end|>' + '\\n' }}"
      "{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  return t;
}

ChatTemplate load_chat_template(const std::string& path, const std::string& name, bool with_tools) {
  fs::path p(path);
  LMLAB_CHECK(fs::exists(p), IoError, "[chat] '", path, "' does not exist");
  if (fs::is_regular_file(p)) {
    if (path.ends_with(".gguf")) return from_gguf(path, name, with_tools);
    if (path.ends_with(".json")) {  // a tokenizer_config.json or chat_template.json
      HfTokenizerConfig c = parse_config(p);
      ChatTemplate ct;
      take_tokens(ct, c);
      if (!c.chat_template && c.chat_templates.empty()) {
        LMLAB_CHECK(name.empty(), ConfigError, "[chat] '", path, "' has no chat template named '", name, "'");
        ChatTemplate d = default_template(ct.bos_token, ct.eos_token);
        d.pad_token = ct.pad_token;
        d.unk_token = ct.unk_token;
        return d;
      }
      ct.origin = p.filename().string() + " chat_template";
      choose(ct, c, name, with_tools, path);
      return ct;
    }
    ChatTemplate ct;  // a template file
    ct.source = read_text(p);
    ct.origin = p.filename().string();
    return ct;
  }
  // A model folder. As transformers loads it: chat_template.jinja (which overrides the config's),
  // else tokenizer_config.json's chat_template, else chat_template.json's.
  HfTokenizerConfig c;
  if (fs::exists(p / "tokenizer_config.json")) c = parse_config(p / "tokenizer_config.json");
  ChatTemplate ct;
  take_tokens(ct, c);
  if (fs::exists(p / "chat_template.jinja")) {
    LMLAB_CHECK(name.empty(), ConfigError, "[chat] '", path, "' has one chat template (chat_template.jinja), not one named '", name, "'");
    ct.source = read_text(p / "chat_template.jinja");
    ct.origin = "chat_template.jinja";
    return ct;
  }
  if (c.chat_template || !c.chat_templates.empty()) {
    ct.origin = "tokenizer_config.json chat_template";
    choose(ct, c, name, with_tools, (p / "tokenizer_config.json").string());
    return ct;
  }
  if (fs::exists(p / "chat_template.json")) {
    HfTokenizerConfig t = parse_config(p / "chat_template.json");
    if (t.chat_template || !t.chat_templates.empty()) {
      ct.origin = "chat_template.json";
      choose(ct, t, name, with_tools, (p / "chat_template.json").string());
      return ct;
    }
  }
  LMLAB_CHECK(name.empty(), ConfigError, "[chat] '", path, "' has no chat template named '", name, "'");
  ChatTemplate d = default_template(ct.bos_token, ct.eos_token);
  d.pad_token = ct.pad_token;
  d.unk_token = ct.unk_token;
  return d;
}

ChatTemplate model_chat_template(const std::string& model_path, const std::string& template_file) {
  ChatTemplate own = load_chat_template(model_path);
  if (template_file.empty()) return own;
  ChatTemplate ct = load_chat_template(template_file);
  ct.bos_token = own.bos_token;
  ct.eos_token = own.eos_token;
  ct.pad_token = own.pad_token;
  ct.unk_token = own.unk_token;
  return ct;
}

ChatRequest chat_request_from_json(const nlohmann::ordered_json& j, const std::string& what) {
  ChatRequest r;
  if (j.is_array()) {
    r.messages = j;
  } else if (j.is_object()) {
    LMLAB_CHECK(j.contains("messages"), ConfigError, "[chat] ", what,
                ": expected an array of messages or an object with \"messages\"");
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "messages") r.messages = it.value();
      else if (it.key() == "tools") r.tools = it.value();
      else if (it.key() == "documents") r.documents = it.value();
      else if (it.key() == "add_generation_prompt") r.add_generation_prompt = it.value().is_boolean() && it.value().get<bool>();
      else r.extra[it.key()] = it.value();
    }
  } else {
    throw ConfigError(str_cat("[chat] ", what, ": expected an array of messages or an object with \"messages\""));
  }
  LMLAB_CHECK(r.messages.is_array(), ConfigError, "[chat] ", what, ": \"messages\" must be an array");
  for (size_t i = 0; i < r.messages.size(); ++i)
    LMLAB_CHECK(r.messages[i].is_object(), ConfigError, "[chat] ", what, ": message ", i, " is not an object");
  if (r.tools && r.tools->is_null()) r.tools.reset();
  if (r.documents && r.documents->is_null()) r.documents.reset();
  return r;
}

std::string render_chat(const jinja::Template& t, const ChatRequest& req, const std::string& bos_token,
                        const std::string& eos_token) {
  using jinja::Value;
  jinja::Dict vars;
  for (auto it = req.extra.begin(); it != req.extra.end(); ++it)
    vars.set(Value::string(it.key()), jinja::from_json(it.value()));
  vars.set(Value::string("messages"), jinja::from_json(req.messages));
  vars.set(Value::string("tools"), req.tools ? jinja::from_json(*req.tools) : Value::none());
  vars.set(Value::string("documents"), req.documents ? jinja::from_json(*req.documents) : Value::none());
  vars.set(Value::string("add_generation_prompt"), Value::boolean(req.add_generation_prompt));
  vars.set(Value::string("bos_token"), Value::string(bos_token));
  vars.set(Value::string("eos_token"), Value::string(eos_token));
  return t.render(vars);
}

std::string render_chat(const ChatTemplate& ct, const ChatRequest& req) {
  jinja::Template t(ct.source, ct.origin.empty() ? "chat_template" : ct.origin);
  ChatRequest r = req;
  // transformers also passes the other special tokens the tokenizer has
  if (ct.pad_token && !r.extra.contains("pad_token")) r.extra["pad_token"] = *ct.pad_token;
  if (ct.unk_token && !r.extra.contains("unk_token")) r.extra["unk_token"] = *ct.unk_token;
  return render_chat(t, r, ct.bos_token, ct.eos_token);
}

}  // namespace lmlab::chat
