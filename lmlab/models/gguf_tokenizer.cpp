// GGUF tokenizer metadata <-> Tokenizer (see gguf_tokenizer.h). References: llama.cpp
// src/llama-vocab.cpp (llama_vocab::impl::load: the `pre` names and their regexes, add_bos
// defaults, add_space_prefix; token attributes), convert_hf_to_gguf.py (_set_vocab_gpt2,
// _set_vocab_sentencepiece), ggml docs/gguf.md (tokenizer.ggml.* keys).
#include "lmlab/models/gguf_tokenizer.h"

#include <map>

#include "lmlab/core/error.h"

namespace lmlab {

namespace {

// llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEFAULT: four regexes applied one after another, each to the
// pieces of the previous one (its unicode_regex_split keeps matches and gaps alike, HF's Isolated).
constexpr std::string_view kDefaultPre[] = {
    R"([\p{P}\$\+<=>\^~\|]+)",
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
    R"(\p{N}+)",
    R"([0-9][0-9][0-9])",
};

struct PreSpec {
  PreTokenizer pre;
  bool ignore_merges = false;
  bool add_bos = false;  // llama.cpp's default when add_bos_token is absent
};

PreTokenizer default_pre() {
  std::vector<PreTokenizerStep> steps;
  for (std::string_view p : kDefaultPre) steps.push_back(PreTokenizerStep::split(p));
  steps.push_back(PreTokenizerStep::byte_level(false, false));
  return PreTokenizer(std::move(steps));
}

std::optional<PreSpec> pre_spec(const std::string& name) {
  if (name == "gpt-2") return PreSpec{PreTokenizer({PreTokenizerStep::byte_level(false, true)}), false, false};
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3")
    return PreSpec{PreTokenizer::from_pattern(kLlama3Pattern), true, true};
  if (name == "smaug-bpe") return PreSpec{PreTokenizer::from_pattern(kLlama3Pattern), false, false};
  if (name == "qwen2") return PreSpec{PreTokenizer::from_pattern(kQwen2Pattern), false, false};
  if (name == "default") return PreSpec{default_pre(), false, false};
  return std::nullopt;
}

bool split_then_byte_level(const PreTokenizer& pre, std::string_view pattern) {
  const auto& s = pre.steps();
  return s.size() == 2 && s[0].kind == PreTokenizerStep::Kind::Split && !s[0].regex.literal() &&
         s[0].regex.pattern() == pattern && s[0].behavior == SplitBehavior::Isolated && !s[0].invert &&
         s[1].kind == PreTokenizerStep::Kind::ByteLevel && !s[1].use_regex && !s[1].add_prefix_space;
}

bool is_default_pre(const PreTokenizer& pre) {
  const auto& s = pre.steps();
  if (s.size() != 5) return false;
  for (size_t i = 0; i < 4; ++i)
    if (s[i].kind != PreTokenizerStep::Kind::Split || s[i].regex.literal() || s[i].regex.pattern() != kDefaultPre[i] ||
        s[i].behavior != SplitBehavior::Isolated || s[i].invert)
      return false;
  return s[4].kind == PreTokenizerStep::Kind::ByteLevel && !s[4].use_regex && !s[4].add_prefix_space;
}

const std::vector<GgufValue>& typed_array(const GgufFile& f, const std::string& src, const std::string& key,
                                          std::initializer_list<GgufType> allowed, size_t want, const char* what) {
  const GgufArray& a = f.get_array(key);
  bool ok = false;
  for (GgufType t : allowed) ok = ok || a.elem == t;
  LMLAB_CHECK(ok, FormatError, src, ": ", key, " is an array of ", gguf_type_name(a.elem), ", expected ", what);
  LMLAB_CHECK(want == SIZE_MAX || a.items.size() == want, FormatError, src, ": ", key, " has ", a.items.size(),
              " entries, expected ", want, " (one per token in tokenizer.ggml.tokens)");
  return a.items;
}

int64_t as_int(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> int64_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) return int64_t(x);
        else return -1;
      },
      v.v);
}

struct TokenArrays {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;  // 1..6
};

TokenArrays read_tokens(const GgufFile& f, const std::string& src) {
  TokenArrays a;
  const auto& tokens =
      typed_array(f, src, "tokenizer.ggml.tokens", {GgufType::STRING}, SIZE_MAX, "strings");
  for (const auto& t : tokens) a.tokens.push_back(std::get<std::string>(t.v));
  a.types.assign(tokens.size(), 1);
  if (f.has("tokenizer.ggml.token_type")) {
    const auto& types = typed_array(f, src, "tokenizer.ggml.token_type",
                                    {GgufType::I32, GgufType::U32, GgufType::I8, GgufType::U8, GgufType::I16,
                                     GgufType::U16, GgufType::I64, GgufType::U64},
                                    tokens.size(), "integers");
    for (size_t i = 0; i < types.size(); ++i) {
      int64_t ty = as_int(types[i]);
      LMLAB_CHECK(ty >= 1 && ty <= 6, FormatError, src, ": tokenizer.ggml.token_type[", i, "] (token '", a.tokens[i],
                  "') is ", ty, ", expected 1..6 (normal, unknown, control, user-defined, unused, byte)");
      a.types[i] = int32_t(ty);
    }
  }
  return a;
}

std::optional<int32_t> opt_id(const GgufFile& f, const char* key) {
  if (!f.has(key)) return std::nullopt;
  return int32_t(f.get_int(key));
}

// bos/eos/pad ids and the add_bos/add_eos template, checked against the vocabulary.
void apply_special_ids(const GgufFile& f, const std::string& src, Tokenizer& tok, bool add_bos_default) {
  auto check = [&](const char* key) -> std::optional<int32_t> {
    std::optional<int32_t> id = opt_id(f, key);
    LMLAB_CHECK(!id || (*id >= 0 && *id < tok.vocab_size()), FormatError, src, ": ", key, " is ", *id,
                ", expected an id in [0, ", tok.vocab_size(), ")");
    return id;
  };
  std::optional<int32_t> bos = check("tokenizer.ggml.bos_token_id"), eos = check("tokenizer.ggml.eos_token_id"),
                         pad = check("tokenizer.ggml.padding_token_id");
  if (bos) tok.set_bos_id(bos);
  if (eos) tok.set_eos_id(eos);
  if (pad) tok.set_pad_id(pad);
  bool add_bos = f.has("tokenizer.ggml.add_bos_token") ? f.get_bool("tokenizer.ggml.add_bos_token") : add_bos_default;
  bool add_eos = f.has("tokenizer.ggml.add_eos_token") && f.get_bool("tokenizer.ggml.add_eos_token");
  std::vector<int32_t> prefix, suffix;
  if (add_bos && tok.bos_id()) prefix.push_back(*tok.bos_id());
  if (add_eos && tok.eos_id()) suffix.push_back(*tok.eos_id());
  tok.set_post_template(std::move(prefix), std::move(suffix));
}

std::unique_ptr<Tokenizer> read_gpt2(const GgufFile& f, const std::string& src) {
  TokenArrays a = read_tokens(f, src);
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<AddedToken> added;
  for (size_t i = 0; i < a.tokens.size(); ++i) {
    const int32_t ty = a.types[i];
    if (ty == 5) continue;  // an unused hole (our writer's "[PADn]")
    if (ty == 2 || ty == 3 || ty == 4) {
      AddedToken t;
      t.id = int32_t(i);
      t.content = a.tokens[i];
      t.special = ty != 4;
      added.push_back(std::move(t));
    } else {
      vocab.emplace_back(a.tokens[i], int32_t(i));
    }
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (f.has("tokenizer.ggml.merges")) {
    const auto& m = typed_array(f, src, "tokenizer.ggml.merges", {GgufType::STRING}, SIZE_MAX, "strings");
    for (size_t i = 0; i < m.size(); ++i) {
      const std::string& s = std::get<std::string>(m[i].v);
      size_t sp = s.find(' ');
      LMLAB_CHECK(sp != std::string::npos, FormatError, src, ": tokenizer.ggml.merges[", i, "] '", s,
                  "' is not \"left right\"");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
  }
  // llama.cpp reads an absent pre as "default" (and warns that quality may suffer).
  const std::string pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  std::optional<PreSpec> spec = pre_spec(pre);
  LMLAB_CHECK(spec.has_value(), FormatError, src, ": tokenizer.ggml.pre '", pre,
              "' is not supported (known: gpt-2, llama-bpe, llama3, llama-v3, smaug-bpe, qwen2, default); "
              "convert from the model's tokenizer.json instead");
  auto tok = std::make_unique<Tokenizer>(
      Tokenizer::from_parts(vocab, merges, std::move(added), spec->pre, spec->ignore_merges, src));
  apply_special_ids(f, src, *tok, spec->add_bos);
  return tok;
}

std::unique_ptr<Tokenizer> read_llama(const GgufFile& f, const std::string& src) {
  TokenArrays a = read_tokens(f, src);
  std::vector<float> scores(a.tokens.size(), 0.f);
  if (f.has("tokenizer.ggml.scores")) {
    const auto& s = typed_array(f, src, "tokenizer.ggml.scores", {GgufType::F32}, a.tokens.size(), "f32 values");
    for (size_t i = 0; i < s.size(); ++i) scores[i] = std::get<float>(s[i].v);
  }
  std::optional<int32_t> unk = opt_id(f, "tokenizer.ggml.unknown_token_id");
  std::vector<SpmModel::Piece> pieces(a.tokens.size());
  std::vector<AddedToken> added;
  for (size_t i = 0; i < a.tokens.size(); ++i) {
    const int32_t ty = a.types[i];
    pieces[i] = SpmModel::Piece{a.tokens[i], scores[i], SpmTokenType(ty)};
    if (ty == 2 && !unk) unk = int32_t(i);
    // llama.cpp matches control, unknown and user-defined tokens in the text before the model
    // runs (tokenizer_st_partition), as HF does with added tokens.
    if (ty == 2 || ty == 3 || ty == 4) {
      AddedToken t;
      t.id = int32_t(i);
      t.content = a.tokens[i];
      t.special = ty != 4;
      added.push_back(std::move(t));
    }
  }
  SpmModel model = SpmModel::from_scores(std::move(pieces), unk, src);
  SpmNormalization norm;
  norm.style = SpmNormalization::Style::Legacy;
  const bool space_prefix =
      !f.has("tokenizer.ggml.add_space_prefix") || f.get_bool("tokenizer.ggml.add_space_prefix");
  norm.prepend = space_prefix ? SpmNormalization::Prepend::Always : SpmNormalization::Prepend::Never;
  auto tok = std::make_unique<Tokenizer>(
      Tokenizer::from_spm(std::move(model), std::move(added), norm, llama_spm_decoder(space_prefix), src));
  apply_special_ids(f, src, *tok, true);
  return tok;
}

std::vector<GgufValue> string_values(std::vector<std::string> v) {
  std::vector<GgufValue> out;
  out.reserve(v.size());
  for (auto& s : v) out.emplace_back(std::move(s));
  return out;
}

}  // namespace

std::optional<std::string> gguf_pre_name(const Tokenizer& tok) {
  if (tok.kind() != TokenizerKind::ByteLevelBpe) return std::nullopt;
  const PreTokenizer& pre = tok.pre_tokenizer();
  const bool im = tok.model().ignore_merges();
  const auto& s = pre.steps();
  if (s.size() == 1 && s[0].kind == PreTokenizerStep::Kind::ByteLevel && s[0].use_regex && !s[0].add_prefix_space &&
      !im)
    return "gpt-2";
  if (split_then_byte_level(pre, kLlama3Pattern)) return im ? "llama-bpe" : "smaug-bpe";
  if (split_then_byte_level(pre, kQwen2Pattern) && !im) return "qwen2";
  if (is_default_pre(pre) && !im) return "default";
  return std::nullopt;
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& f) {
  if (!f.has("tokenizer.ggml.tokens")) return nullptr;
  const std::string src = str_cat("[gguf] '", f.path(), "'");
  const std::string& model = f.get_string("tokenizer.ggml.model");
  if (model == "gpt2") return read_gpt2(f, src);
  if (model == "llama") return read_llama(f, src);
  throw FormatError(str_cat(src, ": tokenizer.ggml.model is '", model,
                            "', expected 'gpt2' (byte-level BPE) or 'llama' (SentencePiece BPE)"));
}

void write_gguf_tokenizer(GgufWriter& w, const Tokenizer& tok, int64_t bos_id, int64_t eos_id) {
  const bool spm = tok.kind() == TokenizerKind::SentencePieceBpe;
  std::map<int32_t, const AddedToken*> added;
  for (const auto& a : tok.added_tokens()) added[a.id] = &a;
  std::vector<std::string> tokens;
  std::vector<GgufValue> types, scores;
  std::vector<float> model_scores = spm ? tok.spm_model().scores() : std::vector<float>();
  const std::optional<int32_t> unk = spm ? tok.spm_model().unk_id() : std::nullopt;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    int32_t type = 1;
    float score = 0;
    if (auto it = added.find(id); it != added.end()) {
      tokens.push_back(it->second->content);
      type = unk == id ? 2 : it->second->special ? 3 : 4;
      if (spm && id < tok.spm_model().id_limit() && tok.spm_model().piece(id)) score = model_scores[size_t(id)];
    } else if (spm && tok.spm_model().piece(id)) {
      const SpmModel::Piece* p = tok.spm_model().piece(id);
      tokens.push_back(p->text);
      type = int32_t(p->type);
      score = model_scores[size_t(id)];
    } else if (!spm && tok.model().id_to_token(id)) {
      tokens.push_back(*tok.model().id_to_token(id));
    } else {
      tokens.push_back(str_cat("[PAD", id, "]"));
      type = 5;
    }
    types.emplace_back(type);
    scores.emplace_back(score);
  }
  w.set("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (!spm) {
    std::optional<std::string> pre = gguf_pre_name(tok);
    LMLAB_CHECK(pre.has_value(), ValueError,
                "[gguf] tokenizer: its pre-tokenizer (or ignore_merges setting) matches none of llama.cpp's "
                "tokenizer.ggml.pre presets that lmlab knows (gpt-2, llama-bpe, smaug-bpe, qwen2, default); "
                "llama.cpp would split text differently");
    w.set("tokenizer.ggml.pre", *pre);
  }
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufType::STRING, string_values(std::move(tokens))));
  if (spm) w.set("tokenizer.ggml.scores", GgufValue::array(GgufType::F32, std::move(scores)));
  w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, std::move(types)));
  if (!spm) {
    std::vector<std::string> merges;
    for (const auto& [a, b] : tok.model().merges())
      merges.push_back(*tok.model().id_to_token(a) + " " + *tok.model().id_to_token(b));
    w.set("tokenizer.ggml.merges", GgufValue::array(GgufType::STRING, string_values(std::move(merges))));
  }
  int64_t bos = bos_id >= 0 ? bos_id : tok.bos_id().value_or(-1);
  int64_t eos = eos_id >= 0 ? eos_id : tok.eos_id().value_or(-1);
  if (bos >= 0) w.set("tokenizer.ggml.bos_token_id", uint32_t(bos));
  if (eos >= 0) w.set("tokenizer.ggml.eos_token_id", uint32_t(eos));
  if (unk) w.set("tokenizer.ggml.unknown_token_id", uint32_t(*unk));
  if (tok.pad_id()) w.set("tokenizer.ggml.padding_token_id", uint32_t(*tok.pad_id()));
  const auto& prefix = tok.post_template_prefix();
  const auto& suffix = tok.post_template_suffix();
  w.set("tokenizer.ggml.add_bos_token", !prefix.empty() && prefix.front() == bos);
  w.set("tokenizer.ggml.add_eos_token", !suffix.empty() && suffix.back() == eos);
  // llama.cpp has no "first" scheme: a space goes in front of every text run after a special token.
  if (spm) w.set("tokenizer.ggml.add_space_prefix", tok.spm_normalization().adds_prefix());
}

}  // namespace lmlab
