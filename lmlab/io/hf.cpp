// Hugging Face model folder reader.
#include "lmlab/io/hf.h"

#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "lmlab/core/file.h"

namespace fs = std::filesystem;

namespace lmlab {

namespace {

using json = nlohmann::json;

// Parses a JSON object document; `P` is the "[hf] 'path'" prefix of every error.
json parse_object(const std::string& text, const std::string& P) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw FormatError(str_cat(P, ": not valid JSON: ", e.what()));
  }
  LMLAB_CHECK(j.is_object(), FormatError, P, ": expected a JSON object, got ", j.type_name());
  return j;
}

// The value of `key` when present and not null.
const json* field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t as_int(const json& v, const std::string& P, const std::string& what) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    LMLAB_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), FormatError, P, ": ", what, " = ", u,
                " does not fit in an int64");
    return int64_t(u);
  }
  LMLAB_CHECK(v.is_number_integer(), FormatError, P, ": ", what, " must be an integer, got ", v.dump());
  return v.get<int64_t>();
}

void get_int(const json& j, const char* key, std::optional<int64_t>& out, const std::string& P) {
  if (const json* v = field(j, key)) out = as_int(*v, P, key);
}

void get_number(const json& j, const char* key, std::optional<double>& out, const std::string& P) {
  if (const json* v = field(j, key)) {
    LMLAB_CHECK(v->is_number(), FormatError, P, ": ", key, " must be a number, got ", v->dump());
    out = v->get<double>();
  }
}

void get_bool(const json& j, const char* key, std::optional<bool>& out, const std::string& P) {
  if (const json* v = field(j, key)) {
    LMLAB_CHECK(v->is_boolean(), FormatError, P, ": ", key, " must be true or false, got ", v->dump());
    out = v->get<bool>();
  }
}

// A special token: "text" or an AddedToken object {"content": "text", ...}.
void get_token(const json& j, const char* key, std::optional<std::string>& out, const std::string& P) {
  const json* v = field(j, key);
  if (!v) return;
  if (v->is_string()) {
    out = v->get<std::string>();
    return;
  }
  LMLAB_CHECK(v->is_object() && v->contains("content") && (*v)["content"].is_string(), FormatError, P, ": ", key,
              " must be a string or an object with a string \"content\", got ", v->dump());
  out = (*v)["content"].get<std::string>();
}

// chat_template: a string, or a list of {"name": ..., "template": ...} of which "default" is the default.
void get_chat_template(const json& j, HfTokenizerConfig& c, const std::string& P) {
  const json* v = field(j, "chat_template");
  if (!v) return;
  if (v->is_string()) {
    c.chat_template = v->get<std::string>();
    return;
  }
  LMLAB_CHECK(v->is_array(), FormatError, P, ": chat_template must be a string or a list of {name, template}, got ",
              v->type_name());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    LMLAB_CHECK(e.is_object() && e.contains("name") && e["name"].is_string() && e.contains("template") &&
                    e["template"].is_string(),
                FormatError, P, ": chat_template[", i, "] must be {\"name\": string, \"template\": string}, got ",
                e.dump());
    std::string name = e["name"].get<std::string>();
    LMLAB_CHECK(c.chat_templates.emplace(name, e["template"].get<std::string>()).second, FormatError, P,
                ": chat_template names '", name, "' twice");
  }
  auto d = c.chat_templates.find("default");
  if (d != c.chat_templates.end()) c.chat_template = d->second;
}

}  // namespace

HfTokenizerConfig HfTokenizerConfig::parse(const std::string& text, const std::string& source) {
  const std::string P = str_cat("[hf] '", source, "'");
  json j = parse_object(text, P);
  HfTokenizerConfig c;
  get_token(j, "bos_token", c.bos_token, P);
  get_token(j, "eos_token", c.eos_token, P);
  get_token(j, "pad_token", c.pad_token, P);
  get_token(j, "unk_token", c.unk_token, P);
  get_bool(j, "add_bos_token", c.add_bos_token, P);
  get_bool(j, "add_eos_token", c.add_eos_token, P);
  get_chat_template(j, c, P);
  return c;
}

HfGenerationConfig HfGenerationConfig::parse(const std::string& text, const std::string& source) {
  const std::string P = str_cat("[hf] '", source, "'");
  json j = parse_object(text, P);
  HfGenerationConfig g;
  get_int(j, "bos_token_id", g.bos_token_id, P);
  get_int(j, "pad_token_id", g.pad_token_id, P);
  if (const json* v = field(j, "eos_token_id")) {
    if (v->is_array()) {
      for (size_t i = 0; i < v->size(); ++i) g.eos_token_ids.push_back(as_int((*v)[i], P, str_cat("eos_token_id[", i, "]")));
    } else {
      LMLAB_CHECK(v->is_number(), FormatError, P, ": eos_token_id must be an integer or a list of integers, got ",
                  v->dump());
      g.eos_token_ids.push_back(as_int(*v, P, "eos_token_id"));
    }
  }
  get_bool(j, "do_sample", g.do_sample, P);
  get_number(j, "temperature", g.temperature, P);
  get_number(j, "top_p", g.top_p, P);
  get_number(j, "repetition_penalty", g.repetition_penalty, P);
  get_int(j, "top_k", g.top_k, P);
  get_int(j, "max_new_tokens", g.max_new_tokens, P);
  get_int(j, "max_length", g.max_length, P);
  if (g.temperature) LMLAB_CHECK(*g.temperature >= 0, FormatError, P, ": temperature ", *g.temperature, " is negative");
  if (g.top_p)
    LMLAB_CHECK(*g.top_p >= 0 && *g.top_p <= 1, FormatError, P, ": top_p ", *g.top_p, " is outside [0, 1]");
  if (g.top_k) LMLAB_CHECK(*g.top_k >= 0, FormatError, P, ": top_k ", *g.top_k, " is negative");
  if (g.repetition_penalty)
    LMLAB_CHECK(*g.repetition_penalty > 0, FormatError, P, ": repetition_penalty ", *g.repetition_penalty,
                " must be positive");
  if (g.max_new_tokens)
    LMLAB_CHECK(*g.max_new_tokens >= 0, FormatError, P, ": max_new_tokens ", *g.max_new_tokens, " is negative");
  if (g.max_length) LMLAB_CHECK(*g.max_length >= 0, FormatError, P, ": max_length ", *g.max_length, " is negative");
  return g;
}

HfFolder HfFolder::open(const std::string& folder) {
  LMLAB_CHECK(fs::is_directory(folder), IoError, "[hf] '", folder, "' is not a folder");
  HfFolder h;
  h.folder = folder;
  fs::path dir(folder);
  h.config_path = (dir / "config.json").string();
  LMLAB_CHECK(fs::exists(h.config_path), IoError, "[hf] '", folder, "' has no config.json");
  h.config_json = read_text_file(h.config_path, "hf");
  h.weights = SafetensorsShards::open_folder(folder);
  fs::path tok = dir / "tokenizer.json";
  if (fs::exists(tok)) h.tokenizer_json = tok.string();
  fs::path tc = dir / "tokenizer_config.json";
  if (fs::exists(tc)) h.tokenizer_config = HfTokenizerConfig::parse(read_text_file(tc.string(), "hf"), tc.string());
  // transformers >= 4.43 may keep the template beside tokenizer_config.json instead of inside it.
  fs::path jinja = dir / "chat_template.jinja", ctj = dir / "chat_template.json";
  if (!h.tokenizer_config.chat_template && fs::exists(jinja)) {
    h.tokenizer_config.chat_template = read_text_file(jinja.string(), "hf");
  } else if (!h.tokenizer_config.chat_template && fs::exists(ctj)) {
    HfTokenizerConfig t = HfTokenizerConfig::parse(read_text_file(ctj.string(), "hf"), ctj.string());
    h.tokenizer_config.chat_template = t.chat_template;
    if (h.tokenizer_config.chat_templates.empty()) h.tokenizer_config.chat_templates = t.chat_templates;
  }
  fs::path gc = dir / "generation_config.json";
  if (fs::exists(gc)) h.generation = HfGenerationConfig::parse(read_text_file(gc.string(), "hf"), gc.string());
  return h;
}

}  // namespace lmlab
