// Hugging Face tokenizer.json read/write (format of the HF `tokenizers` library, version "1.0"):
// byte-level BPE (model type BPE, pre_tokenizer ByteLevel / Split / Digits / Sequence, decoder
// ByteLevel) and SentencePiece-style BPE (byte_fallback, "▁" normalizer or Metaspace; its sections
// are in spm_json.cpp); post_processor ByteLevel / TemplateProcessing. Reading is strict: unknown
// fields and unsupported types are FormatErrors naming the file and the field, never a crash.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmlab/core/error.h"
#include "lmlab/core/file.h"
#include "lmlab/tokenizer/spm_json.h"
#include "lmlab/tokenizer/tokenizer.h"

namespace lmlab {

// Reading uses the std::map-backed json: ordered_json finds keys by linear search, which makes a
// 128k-entry vocab quadratic. Writing uses ordered_json (HF's key order) with the big vocab
// object appended without that search (keys are unique by construction).
using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

namespace {

std::string type_name(const Json& j) { return j.type_name(); }

// Field access that reports what was expected, and where, instead of nlohmann's type_error.
struct Reader {
  std::string where;  // "[tokenizer] path"

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw FormatError(str_cat(where, ": ", field, ": ", what));
  }
  void keys(const Json& obj, const std::string& field, std::initializer_list<const char*> allowed) const {
    if (!obj.is_object()) fail(field, "expected an object, got " + type_name(obj));
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool ok = false;
      for (const char* a : allowed) ok = ok || it.key() == a;
      if (ok) continue;
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      fail(field, "unknown field '" + it.key() + "' (expected one of: " + list + ")");
    }
  }
  bool boolean(const Json& obj, const char* key, const std::string& field, bool dflt) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return dflt;
    if (!it->is_boolean()) fail(field + "." + key, "expected true or false, got " + type_name(*it));
    return it->get<bool>();
  }
  std::string string(const Json& obj, const char* key, const std::string& field) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(field, std::string("missing field '") + key + "'");
    if (!it->is_string()) fail(field + "." + key, "expected a string, got " + type_name(*it));
    return it->get<std::string>();
  }
  int32_t id(const Json& v, const std::string& field) const {
    if (!v.is_number_integer()) fail(field, "expected an integer id, got " + type_name(v));
    int64_t x = v.get<int64_t>();
    if (x < 0 || x > INT32_MAX) fail(field, str_cat("expected an id in [0, 2^31), got ", x));
    return int32_t(x);
  }
  std::string type(const Json& obj, const std::string& field) const {
    if (!obj.is_object()) fail(field, "expected an object, got " + type_name(obj));
    return string(obj, "type", field);
  }
};

void read_pre_tokenizer(const Reader& r, const Json& j, const std::string& field, std::vector<PreTokenizerStep>& steps) {
  std::string t = r.type(j, field);
  if (t == "Sequence") {
    r.keys(j, field, {"type", "pretokenizers"});
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) r.fail(field + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < it->size(); ++i)
      read_pre_tokenizer(r, (*it)[i], str_cat(field, ".pretokenizers[", i, "]"), steps);
  } else if (t == "ByteLevel") {
    r.keys(j, field, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
    steps.push_back(PreTokenizerStep::byte_level(r.boolean(j, "add_prefix_space", field, false),
                                                 r.boolean(j, "use_regex", field, true),
                                                 r.boolean(j, "trim_offsets", field, true)));
  } else if (t == "Split") {
    r.keys(j, field, {"type", "pattern", "behavior", "invert"});
    auto pat = j.find("pattern");
    if (pat == j.end() || !pat->is_object() || pat->size() != 1)
      r.fail(field + ".pattern", "expected {\"Regex\": \"...\"} or {\"String\": \"...\"}");
    bool literal = pat->begin().key() == "String";
    if (!literal && pat->begin().key() != "Regex")
      r.fail(field + ".pattern", "unknown pattern kind '" + pat->begin().key() + "' (expected Regex or String)");
    if (!pat->begin()->is_string()) r.fail(field + ".pattern", "expected a string pattern");
    SplitBehavior behavior = SplitBehavior::Isolated;
    try {
      behavior = parse_split_behavior(r.string(j, "behavior", field), field + ".behavior");
    } catch (const FormatError& e) {
      throw FormatError(r.where + ": " + e.what());
    }
    try {
      steps.push_back(PreTokenizerStep::split(pat->begin()->get<std::string>(), behavior,
                                              r.boolean(j, "invert", field, false), literal));
    } catch (const FormatError& e) {
      throw FormatError(r.where + ": " + field + ".pattern: " + e.what());
    }
  } else if (t == "Digits") {
    r.keys(j, field, {"type", "individual_digits"});
    steps.push_back(PreTokenizerStep::digits(r.boolean(j, "individual_digits", field, false)));
  } else {
    r.fail(field + ".type", "unsupported pre-tokenizer '" + t + "' (expected ByteLevel, Split, Digits or Sequence)");
  }
}

// Normalizers change the text before everything else; only NFC is accepted, and it is not applied
// (input is taken to be NFC already, which holds for almost all text; see the header note).
void check_normalizer(const Reader& r, const Json& j, const std::string& field) {
  if (j.is_null()) return;
  std::string t = r.type(j, field);
  if (t == "Sequence") {
    r.keys(j, field, {"type", "normalizers"});
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) r.fail(field + ".normalizers", "expected an array");
    for (size_t i = 0; i < it->size(); ++i) check_normalizer(r, (*it)[i], str_cat(field, ".normalizers[", i, "]"));
  } else if (t != "NFC") {
    r.fail(field + ".type", "unsupported normalizer '" + t + "' (expected null or NFC)");
  }
}

void check_decoder(const Reader& r, const Json& j, const std::string& field) {
  if (j.is_null()) return;
  std::string t = r.type(j, field);
  if (t != "ByteLevel") r.fail(field + ".type", "unsupported decoder '" + t + "' (expected ByteLevel or null)");
  r.keys(j, field, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
}

// Collects the single-sequence template of TemplateProcessing (possibly inside a Sequence).
void read_post_processor(const Reader& r, const Json& j, const std::string& field, std::vector<int32_t>& prefix,
                         std::vector<int32_t>& suffix) {
  if (j.is_null()) return;
  std::string t = r.type(j, field);
  if (t == "ByteLevel") {
    r.keys(j, field, {"type", "add_prefix_space", "trim_offsets", "use_regex"});
  } else if (t == "Sequence") {
    r.keys(j, field, {"type", "processors"});
    auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) r.fail(field + ".processors", "expected an array");
    for (size_t i = 0; i < it->size(); ++i)
      read_post_processor(r, (*it)[i], str_cat(field, ".processors[", i, "]"), prefix, suffix);
  } else if (t == "TemplateProcessing") {
    r.keys(j, field, {"type", "single", "pair", "special_tokens"});
    auto single = j.find("single");
    if (single == j.end() || !single->is_array()) r.fail(field + ".single", "expected an array");
    auto specials = j.find("special_tokens");
    bool seen_seq = false;
    for (size_t i = 0; i < single->size(); ++i) {
      const Json& item = (*single)[i];
      std::string f = str_cat(field, ".single[", i, "]");
      if (!item.is_object() || item.size() != 1) r.fail(f, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      const std::string& kind = item.begin().key();
      if (kind == "Sequence") {
        seen_seq = true;
        continue;
      }
      if (kind != "SpecialToken") r.fail(f, "unknown template item '" + kind + "'");
      std::string name = r.string(*item.begin(), "id", f + ".SpecialToken");
      if (specials == j.end() || !specials->is_object() || !specials->contains(name))
        r.fail(field + ".special_tokens", "missing entry for '" + name + "' used in " + f);
      const Json& entry = specials->at(name);
      auto ids = entry.is_object() ? entry.find("ids") : entry.end();
      if (!entry.is_object() || ids == entry.end() || !ids->is_array())
        r.fail(field + ".special_tokens['" + name + "'].ids", "expected an array of ids");
      for (const Json& v : *ids) (seen_seq ? suffix : prefix).push_back(r.id(v, field + ".special_tokens.ids"));
    }
  } else {
    r.fail(field + ".type",
           "unsupported post-processor '" + t + "' (expected ByteLevel, TemplateProcessing, Sequence or null)");
  }
}

std::pair<std::string, std::string> read_merge(const Reader& r, const Json& m, size_t i) {
  std::string field = str_cat("model.merges[", i, "]");
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
      r.fail(field, "expected \"left right\" with exactly one space, got '" + s + "'");
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return {m[0].get<std::string>(), m[1].get<std::string>()};
  r.fail(field, "expected \"left right\" or [\"left\", \"right\"], got " + m.dump());
}

// Kept sections are stored with "type" first and the other keys sorted (what a std::map parse
// gives), the same order the writer uses for the defaults, so write(read(x)) is stable.
OJson canonical(const Json& j) {
  if (j.is_array()) {
    OJson a = OJson::array();
    for (const Json& v : j) a.push_back(canonical(v));
    return a;
  }
  if (!j.is_object()) return OJson::parse(j.dump());
  OJson o = OJson::object();
  if (j.contains("type")) o["type"] = canonical(j["type"]);
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.key() != "type") o[it.key()] = canonical(it.value());
  return o;
}

std::string dump_or_empty(const Json& j) { return j.is_null() ? std::string() : canonical(j).dump(); }

OJson parse_kept(const std::string& s, const OJson& dflt) { return s.empty() ? dflt : OJson::parse(s); }

OJson byte_level_json(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  OJson j;
  j["type"] = "ByteLevel";
  j["add_prefix_space"] = add_prefix_space;
  j["trim_offsets"] = trim_offsets;
  j["use_regex"] = use_regex;
  return j;
}

// HF TemplateProcessing for a single-sequence template (and the matching pair template).
OJson template_json(const Tokenizer& t) {
  OJson single = OJson::array(), pair = OJson::array(), specials = OJson::object();
  auto special = [&](int32_t id, int type_id) {
    std::string name = t.id_to_token(id);
    OJson item;
    item["SpecialToken"]["id"] = name;
    item["SpecialToken"]["type_id"] = type_id;
    OJson entry;
    entry["id"] = name;
    entry["ids"] = OJson::array({id});
    entry["tokens"] = OJson::array({name});
    specials[name] = std::move(entry);
    return item;
  };
  auto seq = [](const char* name, int type_id) {
    OJson item;
    item["Sequence"]["id"] = name;
    item["Sequence"]["type_id"] = type_id;
    return item;
  };
  for (int32_t id : t.post_template_prefix()) single.push_back(special(id, 0));
  single.push_back(seq("A", 0));
  for (int32_t id : t.post_template_suffix()) single.push_back(special(id, 0));
  for (const OJson& item : single) pair.push_back(item);
  for (int32_t id : t.post_template_prefix()) pair.push_back(special(id, 1));
  pair.push_back(seq("B", 1));
  for (int32_t id : t.post_template_suffix()) pair.push_back(special(id, 1));
  OJson j;
  j["type"] = "TemplateProcessing";
  j["single"] = std::move(single);
  j["pair"] = std::move(pair);
  j["special_tokens"] = std::move(specials);
  return j;
}

OJson step_json(const PreTokenizerStep& s) {
  OJson j;
  switch (s.kind) {
    case PreTokenizerStep::Kind::ByteLevel:
      return byte_level_json(s.add_prefix_space, s.trim_offsets, s.use_regex);
    case PreTokenizerStep::Kind::Digits:
      j["type"] = "Digits";
      j["individual_digits"] = s.individual_digits;
      return j;
    case PreTokenizerStep::Kind::Split:
      j["type"] = "Split";
      j["pattern"][s.regex.literal() ? "String" : "Regex"] = s.regex.pattern();
      j["behavior"] = split_behavior_name(s.behavior);
      j["invert"] = s.invert;
      return j;
  }
  return j;
}

}  // namespace

struct TokenizerJson {
  static Tokenizer read(std::string_view text, const std::string& source);
  static std::string write(const Tokenizer& t, int indent);
  static void write_spm_model(const Tokenizer& t, OJson& root);
  static void write_byte_level_model(const Tokenizer& t, OJson& root);
};

Tokenizer TokenizerJson::read(std::string_view text, const std::string& source) {
  const Reader r{"[tokenizer] " + source};
  Json root;
  try {
    root = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    throw FormatError(str_cat(r.where, ": malformed JSON: ", e.what()));
  }
  try {
    r.keys(root, "tokenizer.json",
           {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer", "post_processor",
            "decoder", "model"});
    if (!root.contains("model")) r.fail("tokenizer.json", "missing field 'model'");
    if (root.contains("version") && !root["version"].is_string())
      r.fail("version", "expected a string such as \"1.0\"");

    const Json& model = root["model"];
    std::string mtype = model.is_object() && model.contains("type") ? r.type(model, "model") : "BPE";
    if (mtype != "BPE")
      r.fail("model.type", "unsupported model type '" + mtype + "' (expected BPE; WordPiece, Unigram and "
                                                                "WordLevel tokenizers are not supported)");
    r.keys(model, "model",
           {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
            "byte_fallback", "ignore_merges", "vocab", "merges"});
    const Json null_json;
    auto section = [&](const char* k) -> const Json& { return root.contains(k) ? root[k] : null_json; };
    const bool spm = spm_json::is_spm(section("normalizer"), section("pre_tokenizer"));
    if (!spm && r.boolean(model, "byte_fallback", "model", false))
      r.fail("model.byte_fallback",
             "expected false with a byte-level pre-tokenizer (byte fallback belongs to SentencePiece-style "
             "tokenizers: a \u2581 normalizer or a Metaspace pre-tokenizer)");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      auto it = model.find(k);
      if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
        r.fail(std::string("model.") + k, "expected null (byte-level BPE has no subword affixes), got " + it->dump());
    }
    if (model.contains("dropout") && !model["dropout"].is_null() && !model["dropout"].is_number())
      r.fail("model.dropout", "expected null or a number, got " + type_name(model["dropout"]));
    if (model.contains("unk_token") && !model["unk_token"].is_null() && !model["unk_token"].is_string())
      r.fail("model.unk_token", "expected null or a string, got " + type_name(model["unk_token"]));

    auto vit = model.find("vocab");
    if (vit == model.end() || !vit->is_object()) r.fail("model.vocab", "expected an object {token: id}");
    std::vector<std::pair<std::string, int32_t>> vocab;
    vocab.reserve(vit->size());
    for (auto it = vit->begin(); it != vit->end(); ++it)
      vocab.emplace_back(it.key(), r.id(it.value(), "model.vocab['" + it.key() + "']"));
    auto mit = model.find("merges");
    std::vector<std::pair<std::string, std::string>> merges;
    if (mit != model.end() && !mit->is_null()) {
      if (!mit->is_array()) r.fail("model.merges", "expected an array, got " + type_name(*mit));
      merges.reserve(mit->size());
      for (size_t i = 0; i < mit->size(); ++i) merges.push_back(read_merge(r, (*mit)[i], i));
    }

    std::vector<AddedToken> added;
    if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
      const Json& at = root["added_tokens"];
      if (!at.is_array()) r.fail("added_tokens", "expected an array, got " + type_name(at));
      for (size_t i = 0; i < at.size(); ++i) {
        std::string f = str_cat("added_tokens[", i, "]");
        r.keys(at[i], f, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
        AddedToken a;
        if (!at[i].contains("id")) r.fail(f, "missing field 'id'");
        a.id = r.id(at[i]["id"], f + ".id");
        a.content = r.string(at[i], "content", f);
        a.single_word = r.boolean(at[i], "single_word", f, false);
        a.lstrip = r.boolean(at[i], "lstrip", f, false);
        a.rstrip = r.boolean(at[i], "rstrip", f, false);
        a.normalized = r.boolean(at[i], "normalized", f, false);
        a.special = r.boolean(at[i], "special", f, false);
        added.push_back(std::move(a));
      }
    }

    // Id tables are sized by the largest id (~70 bytes an id): it must stay within reach of what the
    // file holds, below its size in bytes (or 2 x the tokens it lists + 256 for a small file), or a
    // three-token file could ask for tables of 2^31 entries. Real files are dense; small test files
    // may imitate a large vocabulary's layout with holes.
    {
      const int64_t listed = int64_t(vocab.size() + added.size()),
                    bound = std::max<int64_t>(2 * listed + 256, int64_t(text.size()));
      for (const auto& [tok, id] : vocab)
        if (id >= bound)
          r.fail("model.vocab['" + tok + "']", str_cat("id ", id, " is far beyond the ", listed, " tokens and ", text.size(),
                                                       " bytes of the file (ids must be below ", bound, ")"));
      for (size_t i = 0; i < added.size(); ++i)
        if (added[i].id >= bound)
          r.fail(str_cat("added_tokens[", i, "].id"), str_cat("id ", added[i].id, " is far beyond the ", listed, " tokens and ",
                                                              text.size(), " bytes of the file (ids must be below ",
                                                              bound, ")"));
    }
    std::vector<int32_t> prefix, suffix;
    read_post_processor(r, section("post_processor"), "post_processor", prefix, suffix);
    auto finish = [&](Tokenizer t) {
      for (int32_t id : prefix) t.id_to_token(id);
      for (int32_t id : suffix) t.id_to_token(id);
      t.template_prefix_ = std::move(prefix);
      t.template_suffix_ = std::move(suffix);
      if (!t.template_prefix_.empty()) t.bos_ = t.template_prefix_.front();
      t.post_processor_json_ = canonical(section("post_processor")).dump();
      t.truncation_json_ = dump_or_empty(section("truncation"));
      t.padding_json_ = dump_or_empty(section("padding"));
      t.dropout_json_ = model.contains("dropout") ? dump_or_empty(model["dropout"]) : "";
      return t;
    };
    if (spm) {
      std::optional<std::string> unk;
      if (model.contains("unk_token") && model["unk_token"].is_string()) unk = model["unk_token"].get<std::string>();
      SpmNormalization norm = spm_json::read_normalization(section("normalizer"), section("pre_tokenizer"), r.where);
      std::vector<SpmDecodeStep> decoder = spm_json::read_decoder(section("decoder"), r.where);
      SpmModel m = SpmModel::from_merges(vocab, merges, unk, r.boolean(model, "byte_fallback", "model", false),
                                         r.boolean(model, "fuse_unk", "model", false),
                                         r.boolean(model, "ignore_merges", "model", false), r.where);
      return finish(Tokenizer::from_spm(std::move(m), std::move(added), norm, std::move(decoder), r.where));
    }
    std::vector<PreTokenizerStep> steps;
    if (section("pre_tokenizer").is_null())
      r.fail("pre_tokenizer", "expected a ByteLevel pre-tokenizer (this is a byte-level BPE reader), got null");
    read_pre_tokenizer(r, section("pre_tokenizer"), "pre_tokenizer", steps);
    if (steps.empty() || steps.back().kind != PreTokenizerStep::Kind::ByteLevel)
      r.fail("pre_tokenizer", "expected ByteLevel as the last pre-tokenizer step (byte-level BPE)");
    for (size_t i = 0; i + 1 < steps.size(); ++i)
      if (steps[i].kind == PreTokenizerStep::Kind::ByteLevel && steps[i].use_regex)
        r.fail("pre_tokenizer", "a ByteLevel step with use_regex must be the last step");
    check_normalizer(r, section("normalizer"), "normalizer");
    check_decoder(r, section("decoder"), "decoder");

    Tokenizer t = finish(Tokenizer::from_parts(vocab, merges, std::move(added), PreTokenizer(std::move(steps)),
                                               r.boolean(model, "ignore_merges", "model", false), r.where));
    t.normalizer_json_ = dump_or_empty(section("normalizer"));
    t.decoder_json_ = canonical(section("decoder")).dump();
    t.unk_token_json_ = model.contains("unk_token") ? dump_or_empty(model["unk_token"]) : "";
    t.fuse_unk_ = r.boolean(model, "fuse_unk", "model", false);
    return t;
  } catch (const IndexError& e) {
    throw FormatError(str_cat(r.where, ": post_processor names an id that is not in the vocabulary: ", e.what()));
  } catch (const Json::exception& e) {
    // Safety net: every access above is type-checked, but a JSON library error must still come
    // out as a FormatError that names the file.
    throw FormatError(str_cat(r.where, ": unexpected JSON structure: ", e.what()));
  }
}

std::string TokenizerJson::write(const Tokenizer& t, int indent) {
  OJson root;
  root["version"] = "1.0";
  root["truncation"] = parse_kept(t.truncation_json_, nullptr);
  root["padding"] = parse_kept(t.padding_json_, nullptr);
  std::vector<const AddedToken*> added;
  for (const AddedToken& a : t.added_) added.push_back(&a);
  std::stable_sort(added.begin(), added.end(), [](const AddedToken* a, const AddedToken* b) { return a->id < b->id; });
  root["added_tokens"] = OJson::array();
  for (const AddedToken* a : added) {
    OJson j;
    j["id"] = a->id;
    j["content"] = a->content;
    j["single_word"] = a->single_word;
    j["lstrip"] = a->lstrip;
    j["rstrip"] = a->rstrip;
    j["normalized"] = a->normalized;
    j["special"] = a->special;
    root["added_tokens"].push_back(std::move(j));
  }
  const bool spm = t.kind_ == TokenizerKind::SentencePieceBpe;
  OJson default_post = spm ? OJson(nullptr) : byte_level_json(true, false, true);
  if (t.post_processor_json_.empty() && !(t.template_prefix_.empty() && t.template_suffix_.empty())) {
    if (spm) {
      default_post = template_json(t);
    } else {
      default_post = OJson::object();
      default_post["type"] = "Sequence";
      default_post["processors"] = OJson::array({byte_level_json(true, false, true), template_json(t)});
    }
  }
  const auto& steps = t.pre_tokenizer_.steps();
  if (spm) {
    root["normalizer"] = spm_json::normalizer_json(t.spm_norm_);
    root["pre_tokenizer"] = spm_json::pre_tokenizer_json(t.spm_norm_);
  } else {
    root["normalizer"] = parse_kept(t.normalizer_json_, nullptr);
    if (steps.size() == 1) {
      root["pre_tokenizer"] = step_json(steps[0]);
    } else {
      OJson seq;
      seq["type"] = "Sequence";
      seq["pretokenizers"] = OJson::array();
      for (const auto& s : steps) seq["pretokenizers"].push_back(step_json(s));
      root["pre_tokenizer"] = std::move(seq);
    }
  }
  root["post_processor"] = parse_kept(t.post_processor_json_, default_post);
  root["decoder"] = spm ? spm_json::decoder_json(t.spm_decoder_) : parse_kept(t.decoder_json_, byte_level_json(true, true, true));
  if (spm) write_spm_model(t, root);
  else write_byte_level_model(t, root);
  try {
    return root.dump(indent) + "\n";
  } catch (const OJson::exception& e) {
    throw ValueError(str_cat("[tokenizer] to_json: cannot serialize (an added token is not valid UTF-8?): ", e.what()));
  }
}

namespace {

// The "left right" string form is ambiguous when a token holds a space (never in byte-level or
// "▁" vocabularies); the array form is used then.
OJson merges_json(const std::vector<std::pair<const std::string*, const std::string*>>& merges) {
  bool any_space = false;
  for (auto [a, b] : merges) any_space = any_space || a->find(' ') != std::string::npos || b->find(' ') != std::string::npos;
  OJson out = OJson::array();
  for (auto [a, b] : merges) {
    if (any_space) out.push_back(OJson::array({*a, *b}));
    else out.push_back(*a + " " + *b);
  }
  return out;
}

}  // namespace

void TokenizerJson::write_spm_model(const Tokenizer& t, OJson& root) {
  const SpmModel& m = t.spm_;
  OJson model;
  model["type"] = "BPE";
  model["dropout"] = parse_kept(t.dropout_json_, nullptr);
  std::optional<std::string> unk = m.unk_token();
  model["unk_token"] = unk ? OJson(*unk) : OJson(nullptr);
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = m.fuse_unk();
  model["byte_fallback"] = m.byte_fallback();
  model["ignore_merges"] = m.ignore_merges();
  OJson vocab = OJson::object();
  auto& entries = vocab.get_ref<OJson::object_t&>();
  entries.reserve(m.size());
  for (int32_t id = 0; id < m.id_limit(); ++id)
    if (const SpmModel::Piece* p = m.piece(id)) entries.OJson::object_t::Container::emplace_back(p->text, id);
  model["vocab"] = std::move(vocab);
  std::vector<std::pair<const std::string*, const std::string*>> merges;
  for (auto [a, b] : m.merges()) merges.emplace_back(&m.piece(a)->text, &m.piece(b)->text);
  model["merges"] = merges_json(merges);
  root["model"] = std::move(model);
}

void TokenizerJson::write_byte_level_model(const Tokenizer& t, OJson& root) {
  const BpeModel& m = t.model_;
  OJson model;
  model["type"] = "BPE";
  model["dropout"] = parse_kept(t.dropout_json_, nullptr);
  model["unk_token"] = parse_kept(t.unk_token_json_, nullptr);
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = t.fuse_unk_;
  model["byte_fallback"] = false;
  model["ignore_merges"] = m.ignore_merges();
  OJson vocab = OJson::object();
  auto& entries = vocab.get_ref<OJson::object_t&>();
  entries.reserve(m.size());
  for (int32_t id = 0; id < m.id_limit(); ++id)
    if (const std::string* tok = m.id_to_token(id)) entries.OJson::object_t::Container::emplace_back(*tok, id);
  model["vocab"] = std::move(vocab);
  std::vector<std::pair<const std::string*, const std::string*>> merges;
  for (auto [a, b] : m.merges()) merges.emplace_back(m.id_to_token(a), m.id_to_token(b));
  model["merges"] = merges_json(merges);
  root["model"] = std::move(model);
}

Tokenizer Tokenizer::from_json(std::string_view json, const std::string& source) {
  return TokenizerJson::read(json, source);
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  return TokenizerJson::read(read_text_file(path, "tokenizer"), path);
}

std::string Tokenizer::to_json(int indent) const { return TokenizerJson::write(*this, indent); }

void Tokenizer::save(const std::string& path) const { write_file_atomic(path, to_json(), "tokenizer"); }

}  // namespace lmlab
