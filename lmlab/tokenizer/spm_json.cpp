// tokenizer.json sections of SentencePiece-style tokenizers (see spm_json.h). Layouts follow HF
// transformers convert_slow_tokenizer.py LlamaConverter (legacy normalizer, or Metaspace with
// prepend_scheme when legacy=false) and tokenizers' serialized decoders.
#include "lmlab/tokenizer/spm_json.h"

#include "lmlab/core/error.h"

namespace lmlab::spm_json {

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& field, const std::string& what) {
  throw FormatError(str_cat(where, ": ", field, ": ", what));
}

void keys(const Json& obj, const std::string& where, const std::string& field, std::initializer_list<const char*> allowed) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || it.key() == a;
    if (ok) continue;
    std::string list;
    for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
    fail(where, field, "unknown field '" + it.key() + "' (expected one of: " + list + ")");
  }
}

std::string type_of(const Json& j, const std::string& where, const std::string& field) {
  if (!j.is_object()) fail(where, field, std::string("expected an object, got ") + j.type_name());
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) fail(where, field, "missing string field 'type'");
  return t->get<std::string>();
}

std::string str(const Json& j, const char* key, const std::string& where, const std::string& field) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) fail(where, field + "." + key, "expected a string");
  return it->get<std::string>();
}

// HF's Replace pattern: {"String": "..."} (a {"Regex": ...} is not supported here).
std::string literal_pattern(const Json& j, const std::string& where, const std::string& field) {
  auto it = j.find("pattern");
  if (it == j.end() || !it->is_object() || it->size() != 1 || it->begin().key() != "String" ||
      !it->begin()->is_string())
    fail(where, field + ".pattern", "expected {\"String\": \"...\"}");
  return it->begin()->get<std::string>();
}

bool boolean(const Json& j, const char* key, bool dflt, const std::string& where, const std::string& field) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) fail(where, field + "." + key, "expected true or false");
  return it->get<bool>();
}

int32_t count(const Json& j, const char* key, const std::string& where, const std::string& field) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1'000'000)
    fail(where, field + "." + key, "expected a small non-negative integer");
  return int32_t(it->get<int64_t>());
}

SpmNormalization::Prepend parse_scheme(const Json& j, const std::string& where, const std::string& field) {
  // Older files have add_prefix_space instead of prepend_scheme.
  if (j.contains("prepend_scheme")) {
    std::string s = str(j, "prepend_scheme", where, field);
    if (s == "always") return SpmNormalization::Prepend::Always;
    if (s == "first") return SpmNormalization::Prepend::First;
    if (s == "never") return SpmNormalization::Prepend::Never;
    fail(where, field + ".prepend_scheme", "expected always, first or never, got '" + s + "'");
  }
  return boolean(j, "add_prefix_space", true, where, field) ? SpmNormalization::Prepend::Always
                                                            : SpmNormalization::Prepend::Never;
}

const char* scheme_name(SpmNormalization::Prepend p) {
  switch (p) {
    case SpmNormalization::Prepend::Never: return "never";
    case SpmNormalization::Prepend::First: return "first";
    case SpmNormalization::Prepend::Always: return "always";
  }
  return "always";
}

void read_metaspace(const Json& j, const std::string& where, const std::string& field, std::string* replacement,
                    SpmNormalization::Prepend* scheme, bool* split) {
  keys(j, where, field, {"type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
  *replacement = j.contains("replacement") ? str(j, "replacement", where, field) : std::string(kSpmSpace);
  if (*replacement != kSpmSpace)
    fail(where, field + ".replacement", "expected \"\u2581\" (U+2581), got '" + *replacement + "'");
  *scheme = parse_scheme(j, where, field);
  *split = boolean(j, "split", true, where, field);
}

void flatten_normalizer(const Json& j, const std::string& where, const std::string& field,
                        std::vector<std::pair<std::string, const Json*>>& out) {
  std::string t = type_of(j, where, field);
  if (t == "Sequence") {
    keys(j, where, field, {"type", "normalizers"});
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) fail(where, field + ".normalizers", "expected an array");
    for (size_t i = 0; i < it->size(); ++i)
      flatten_normalizer((*it)[i], where, str_cat(field, ".normalizers[", i, "]"), out);
    return;
  }
  out.emplace_back(field, &j);
}

}  // namespace

bool is_spm(const Json& normalizer, const Json& pre_tokenizer) {
  if (pre_tokenizer.is_null()) return !normalizer.is_null();
  if (!pre_tokenizer.is_object()) return false;
  auto t = pre_tokenizer.find("type");
  if (t == pre_tokenizer.end() || !t->is_string()) return false;
  if (*t == "Metaspace") return true;
  if (*t != "Sequence") return false;
  auto p = pre_tokenizer.find("pretokenizers");
  return p != pre_tokenizer.end() && p->is_array() && p->size() == 1 && (*p)[0].is_object() &&
         (*p)[0].value("type", "") == "Metaspace";
}

SpmNormalization read_normalization(const Json& normalizer, const Json& pre_tokenizer, const std::string& where) {
  SpmNormalization n;
  if (!pre_tokenizer.is_null()) {
    const Json* meta = &pre_tokenizer;
    std::string field = "pre_tokenizer";
    if (type_of(pre_tokenizer, where, field) == "Sequence") {
      keys(pre_tokenizer, where, field, {"type", "pretokenizers"});
      meta = &pre_tokenizer["pretokenizers"][0];
      field = "pre_tokenizer.pretokenizers[0]";
    }
    if (!normalizer.is_null())
      fail(where, "normalizer", "expected null with a Metaspace pre-tokenizer (the normalizer would add a second \"\u2581\")");
    std::string replacement;
    n.style = SpmNormalization::Style::Metaspace;
    read_metaspace(*meta, where, field, &replacement, &n.prepend, &n.split);
    return n;
  }
  std::vector<std::pair<std::string, const Json*>> steps;
  flatten_normalizer(normalizer, where, "normalizer", steps);
  bool prepend = false, replace = false;
  for (const auto& [field, j] : steps) {
    std::string t = type_of(*j, where, field);
    if (t == "Prepend") {
      keys(*j, where, field, {"type", "prepend"});
      if (str(*j, "prepend", where, field) != kSpmSpace || prepend)
        fail(where, field, "expected one Prepend(\"\u2581\")");
      prepend = true;
    } else if (t == "Replace") {
      keys(*j, where, field, {"type", "pattern", "content"});
      if (literal_pattern(*j, where, field) != " " || str(*j, "content", where, field) != kSpmSpace || replace)
        fail(where, field, "expected one Replace(\" \" -> \"\u2581\")");
      replace = true;
    } else {
      fail(where, field + ".type", "unsupported normalizer '" + t +
                                       "' for a SentencePiece-style tokenizer (expected Prepend(\"\u2581\") and "
                                       "Replace(\" \" -> \"\u2581\"))");
    }
  }
  if (!replace)
    fail(where, "normalizer", "expected a Replace(\" \" -> \"\u2581\") step (no ByteLevel or Metaspace pre-tokenizer)");
  n.style = SpmNormalization::Style::Legacy;
  n.prepend = prepend ? SpmNormalization::Prepend::Always : SpmNormalization::Prepend::Never;
  return n;
}

std::vector<SpmDecodeStep> read_decoder(const Json& decoder, const std::string& where) {
  std::vector<SpmDecodeStep> steps;
  if (decoder.is_null()) return steps;
  auto one = [&](auto&& self, const Json& j, const std::string& field) -> void {
    std::string t = type_of(j, where, field);
    SpmDecodeStep s;
    if (t == "Sequence") {
      keys(j, where, field, {"type", "decoders"});
      auto it = j.find("decoders");
      if (it == j.end() || !it->is_array()) fail(where, field + ".decoders", "expected an array");
      for (size_t i = 0; i < it->size(); ++i) self(self, (*it)[i], str_cat(field, ".decoders[", i, "]"));
      return;
    } else if (t == "Replace") {
      keys(j, where, field, {"type", "pattern", "content"});
      s.kind = SpmDecodeStep::Kind::Replace;
      s.pattern = literal_pattern(j, where, field);
      s.content = str(j, "content", where, field);
      if (s.pattern.empty()) fail(where, field + ".pattern", "expected a non-empty string");
    } else if (t == "ByteFallback" || t == "Fuse") {
      keys(j, where, field, {"type"});
      s.kind = t == "Fuse" ? SpmDecodeStep::Kind::Fuse : SpmDecodeStep::Kind::ByteFallback;
    } else if (t == "Strip") {
      keys(j, where, field, {"type", "content", "start", "stop"});
      s.kind = SpmDecodeStep::Kind::Strip;
      s.content = str(j, "content", where, field);
      s.start = count(j, "start", where, field);
      s.stop = count(j, "stop", where, field);
    } else if (t == "Metaspace") {
      s.kind = SpmDecodeStep::Kind::Metaspace;
      read_metaspace(j, where, field, &s.pattern, &s.prepend, &s.split);
    } else {
      fail(where, field + ".type",
           "unsupported decoder '" + t + "' (expected Replace, ByteFallback, Fuse, Strip, Metaspace or Sequence)");
    }
    steps.push_back(std::move(s));
  };
  one(one, decoder, "decoder");
  return steps;
}

OJson normalizer_json(const SpmNormalization& n) {
  if (n.style != SpmNormalization::Style::Legacy) return nullptr;
  OJson seq;
  seq["type"] = "Sequence";
  seq["normalizers"] = OJson::array();
  if (n.prepend != SpmNormalization::Prepend::Never) {
    OJson p;
    p["type"] = "Prepend";
    p["prepend"] = std::string(kSpmSpace);
    seq["normalizers"].push_back(std::move(p));
  }
  OJson r;
  r["type"] = "Replace";
  r["pattern"]["String"] = " ";
  r["content"] = std::string(kSpmSpace);
  seq["normalizers"].push_back(std::move(r));
  return seq;
}

OJson pre_tokenizer_json(const SpmNormalization& n) {
  if (n.style != SpmNormalization::Style::Metaspace) return nullptr;
  OJson j;
  j["type"] = "Metaspace";
  j["replacement"] = std::string(kSpmSpace);
  j["prepend_scheme"] = scheme_name(n.prepend);
  j["split"] = n.split;
  return j;
}

OJson decoder_json(const std::vector<SpmDecodeStep>& steps) {
  OJson arr = OJson::array();
  for (const SpmDecodeStep& s : steps) {
    OJson j;
    switch (s.kind) {
      case SpmDecodeStep::Kind::Replace:
        j["type"] = "Replace";
        j["pattern"]["String"] = s.pattern;
        j["content"] = s.content;
        break;
      case SpmDecodeStep::Kind::ByteFallback: j["type"] = "ByteFallback"; break;
      case SpmDecodeStep::Kind::Fuse: j["type"] = "Fuse"; break;
      case SpmDecodeStep::Kind::Strip:
        j["type"] = "Strip";
        j["content"] = s.content;
        j["start"] = s.start;
        j["stop"] = s.stop;
        break;
      case SpmDecodeStep::Kind::Metaspace:
        j["type"] = "Metaspace";
        j["replacement"] = s.pattern;
        j["prepend_scheme"] = scheme_name(s.prepend);
        j["split"] = s.split;
        break;
    }
    arr.push_back(std::move(j));
  }
  if (arr.empty()) return nullptr;
  OJson seq;
  seq["type"] = "Sequence";
  seq["decoders"] = std::move(arr);
  return seq;
}

}  // namespace lmlab::spm_json
