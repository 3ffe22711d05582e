// GGUF <-> HF Llama conversion and .gguf loading. References: llama.cpp convert_hf_to_gguf.py
// (LlamaModel.permute, the tokenizer.ggml.* keys of a byte-level BPE vocab), gguf-py constants.py
// (tensor names, llama.* metadata keys), ggml/docs/gguf.md (token types 1 normal, 3 control, 4 user
// defined, 5 unused).
#include "lmlab/models/gguf_llama.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include "lmlab/io/safetensors.h"

namespace fs = std::filesystem;

namespace lmlab {

namespace {

constexpr const char* kLayerHf = "model.layers.";
constexpr const char* kLayerGguf = "blk.";

// "<prefix><digits>.<rest>" -> (layer, rest); nullopt otherwise.
std::optional<std::pair<std::string, std::string>> split_layer(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  size_t p = prefix.size(), q = p;
  while (q < name.size() && name[q] >= '0' && name[q] <= '9') ++q;
  if (q == p || q >= name.size() || name[q] != '.') return std::nullopt;
  return std::make_pair(name.substr(p, q - p), name.substr(q + 1));
}

std::optional<std::string> map_name(const std::string& name, bool to_gguf) {
  const std::string from_prefix = to_gguf ? kLayerHf : kLayerGguf, to_prefix = to_gguf ? kLayerGguf : kLayerHf;
  auto layer = split_layer(name, from_prefix);
  for (const auto& e : llama_gguf_name_table()) {
    std::string from = to_gguf ? e.hf : e.gguf, to = to_gguf ? e.gguf : e.hf;
    if (from.rfind(from_prefix + "{i}.", 0) == 0) {
      if (layer && from.substr(from_prefix.size() + 4) == layer->second)
        return to_prefix + layer->first + "." + to.substr(to_prefix.size() + 4);
    } else if (from == name) {
      return to;
    }
  }
  return std::nullopt;
}

bool is_q(const std::string& hf) { return hf.ends_with(".self_attn.q_proj.weight"); }
bool is_k(const std::string& hf) { return hf.ends_with(".self_attn.k_proj.weight"); }

// Short decimal form of a value stored as f32 (1e-05 rather than 9.99999974738e-06).
double tidy_f32(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.7g", float(v));
  return std::strtod(buf, nullptr);
}

GgmlType ggml_of(DType d) {
  switch (d) {
    case DType::F16: return GgmlType::F16;
    case DType::BF16: return GgmlType::BF16;
    default: return GgmlType::F32;
  }
}

// "gpt-2" for the GPT-2 byte-level preset, "llama-bpe" for Split(Llama-3 pattern) + ByteLevel.
std::string pre_name(const PreTokenizer& pre) {
  const auto& s = pre.steps();
  if (s.size() == 1 && s[0].kind == PreTokenizerStep::Kind::ByteLevel && s[0].use_regex && !s[0].add_prefix_space)
    return "gpt-2";
  if (s.size() == 2 && s[0].kind == PreTokenizerStep::Kind::Split &&
      s[0].regex.pattern() == preset_pattern(PatternPreset::Llama3) && s[1].kind == PreTokenizerStep::Kind::ByteLevel &&
      !s[1].use_regex)
    return "llama-bpe";
  return "default";
}

void write_tokenizer(GgufWriter& w, const Tokenizer& tok, const TransformerConfig& cfg) {
  w.set("tokenizer.ggml.model", "gpt2");
  w.set("tokenizer.ggml.pre", pre_name(tok.pre_tokenizer()));
  std::vector<GgufValue> tokens, types;
  std::map<int32_t, const AddedToken*> added;
  for (const auto& a : tok.added_tokens()) added[a.id] = &a;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    auto it = added.find(id);
    if (it != added.end()) {
      tokens.emplace_back(it->second->content);
      types.emplace_back(int32_t(it->second->special ? 3 : 4));
    } else if (const std::string* s = tok.model().id_to_token(id)) {
      tokens.emplace_back(*s);
      types.emplace_back(int32_t(1));
    } else {
      tokens.emplace_back(str_cat("[PAD", id, "]"));
      types.emplace_back(int32_t(5));
    }
  }
  std::vector<GgufValue> merges;
  for (const auto& [a, b] : tok.model().merges())
    merges.emplace_back(*tok.model().id_to_token(a) + " " + *tok.model().id_to_token(b));
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufType::STRING, std::move(tokens)));
  w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, std::move(types)));
  w.set("tokenizer.ggml.merges", GgufValue::array(GgufType::STRING, std::move(merges)));
  int64_t bos = cfg.bos_token_id >= 0 ? cfg.bos_token_id : tok.bos_id().value_or(-1);
  int64_t eos = cfg.eos_token_id >= 0 ? cfg.eos_token_id : tok.eos_id().value_or(-1);
  if (bos >= 0) w.set("tokenizer.ggml.bos_token_id", uint32_t(bos));
  if (eos >= 0) w.set("tokenizer.ggml.eos_token_id", uint32_t(eos));
  if (tok.pad_id()) w.set("tokenizer.ggml.padding_token_id", uint32_t(*tok.pad_id()));
}

// The GGUF tensor for HF name `hf`, checked against `shape`, q/k permuted back, as `want`.
Tensor read_hf_tensor(const GgufFile& f, const TransformerConfig& cfg, const std::string& hf, const Shape& shape,
                      DType want) {
  std::string g = *llama_hf_to_gguf_name(hf);
  LMLAB_CHECK(f.contains(g), FormatError, "[gguf] '", f.path(), "': missing tensor '", g, "' (", hf,
              "), expected shape ", shape_str(shape));
  const auto& info = f.info(g);
  LMLAB_CHECK(info.shape == shape, FormatError, "[gguf] '", f.path(), "': tensor '", g, "' has shape ",
              shape_str(info.shape), ", expected ", shape_str(shape), " for the config");
  Tensor t = f.get_tensor(g, want);
  if (is_q(hf)) t = llama_permute_qk(t, cfg.num_attention_heads, true);
  if (is_k(hf)) t = llama_permute_qk(t, cfg.num_key_value_heads, true);
  return t;
}

}  // namespace

const std::vector<GgufNamePair>& llama_gguf_name_table() {
  static const std::vector<GgufNamePair> table = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.layers.{i}.input_layernorm.weight", "blk.{i}.attn_norm.weight"},
      {"model.layers.{i}.self_attn.q_proj.weight", "blk.{i}.attn_q.weight"},
      {"model.layers.{i}.self_attn.k_proj.weight", "blk.{i}.attn_k.weight"},
      {"model.layers.{i}.self_attn.v_proj.weight", "blk.{i}.attn_v.weight"},
      {"model.layers.{i}.self_attn.o_proj.weight", "blk.{i}.attn_output.weight"},
      {"model.layers.{i}.post_attention_layernorm.weight", "blk.{i}.ffn_norm.weight"},
      {"model.layers.{i}.mlp.gate_proj.weight", "blk.{i}.ffn_gate.weight"},
      {"model.layers.{i}.mlp.up_proj.weight", "blk.{i}.ffn_up.weight"},
      {"model.layers.{i}.mlp.down_proj.weight", "blk.{i}.ffn_down.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  return table;
}

std::optional<std::string> llama_hf_to_gguf_name(const std::string& hf) { return map_name(hf, true); }
std::optional<std::string> llama_gguf_to_hf_name(const std::string& gguf) { return map_name(gguf, false); }

std::vector<std::pair<std::string, Shape>> llama_hf_tensor_shapes(const TransformerConfig& cfg) {
  const int64_t C = cfg.hidden_size, D = cfg.resolved_head_dim(), I = cfg.intermediate_size, V = cfg.vocab_size;
  const int64_t Q = cfg.num_attention_heads * D, K = cfg.num_key_value_heads * D;
  std::vector<std::pair<std::string, Shape>> out = {{"model.embed_tokens.weight", {V, C}}};
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    std::string p = str_cat("model.layers.", i, ".");
    out.push_back({p + "input_layernorm.weight", {C}});
    out.push_back({p + "self_attn.q_proj.weight", {Q, C}});
    out.push_back({p + "self_attn.k_proj.weight", {K, C}});
    out.push_back({p + "self_attn.v_proj.weight", {K, C}});
    out.push_back({p + "self_attn.o_proj.weight", {C, Q}});
    out.push_back({p + "post_attention_layernorm.weight", {C}});
    out.push_back({p + "mlp.gate_proj.weight", {I, C}});
    out.push_back({p + "mlp.up_proj.weight", {I, C}});
    out.push_back({p + "mlp.down_proj.weight", {C, I}});
  }
  out.push_back({"model.norm.weight", {C}});
  if (!cfg.tie_word_embeddings) out.push_back({"lm_head.weight", {V, C}});
  return out;
}

Tensor llama_permute_qk(const Tensor& w, int64_t n_head, bool inverse) {
  LMLAB_CHECK(w.dim() == 2 && n_head > 0 && w.size(0) % n_head == 0 && (w.size(0) / n_head) % 2 == 0, ShapeError,
              "[gguf] q/k permute: shape ", shape_str(w.shape()), " is not [n_head(", n_head, ") * even head_dim, in]");
  Tensor src = w.contiguous();
  Tensor out = Tensor::empty(w.shape(), w.dtype());
  const int64_t D = w.size(0) / n_head, half = D / 2;
  const size_t row = size_t(w.size(1)) * dtype_size(w.dtype());
  const auto* s = static_cast<const char*>(src.raw_data());
  auto* d = static_cast<char*>(out.raw_data());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t k = 0; k < 2; ++k) {
        int64_t hf_row = h * D + k * half + j, gg_row = h * D + 2 * j + k;
        int64_t from = inverse ? gg_row : hf_row, to = inverse ? hf_row : gg_row;
        std::memcpy(d + size_t(to) * row, s + size_t(from) * row, row);
      }
  return out;
}

void hf_folder_to_gguf(const std::string& folder, const std::string& out_gguf, std::optional<GgmlType> type) {
  LMLAB_CHECK(!type || *type == GgmlType::F32 || *type == GgmlType::F16 || *type == GgmlType::BF16, ValueError,
              "[gguf] convert: only f32, f16 and bf16 output types are supported");
  const std::string cpath = folder + "/config.json", wpath = folder + "/model.safetensors";
  LMLAB_CHECK(fs::exists(cpath), IoError, "[gguf] '", folder, "' has no config.json");
  LMLAB_CHECK(fs::exists(wpath), IoError, "[gguf] '", folder, "' has no model.safetensors");
  TransformerConfig cfg = TransformerConfig::from_file(cpath);
  LMLAB_CHECK(!cfg.attention_bias && cfg.sliding_window == 0 && cfg.rope_scaling.type == RopeScaling::Type::None,
              FormatError, "[gguf] '", cpath, "': only plain Llama models convert (no attention_bias, sliding_window",
              " or rope_scaling), architecture '", cfg.architecture, "'");
  SafetensorsFile st = SafetensorsFile::open(wpath);

  GgufWriter w;
  w.set("general.architecture", "llama");
  w.set("general.name", fs::path(folder).lexically_normal().filename().string().empty()
                            ? fs::path(folder).lexically_normal().parent_path().filename().string()
                            : fs::path(folder).lexically_normal().filename().string());
  w.set("llama.vocab_size", uint32_t(cfg.vocab_size));
  w.set("llama.context_length", uint32_t(cfg.max_position_embeddings));
  w.set("llama.embedding_length", uint32_t(cfg.hidden_size));
  w.set("llama.block_count", uint32_t(cfg.num_hidden_layers));
  w.set("llama.feed_forward_length", uint32_t(cfg.intermediate_size));
  w.set("llama.attention.head_count", uint32_t(cfg.num_attention_heads));
  w.set("llama.attention.head_count_kv", uint32_t(cfg.num_key_value_heads));
  w.set("llama.rope.freq_base", float(cfg.rope_theta));
  w.set("llama.attention.layer_norm_rms_epsilon", float(cfg.rms_norm_eps));
  w.set("llama.rope.dimension_count", uint32_t(cfg.resolved_head_dim()));
  if (cfg.resolved_head_dim() * cfg.num_attention_heads != cfg.hidden_size) {
    w.set("llama.attention.key_length", uint32_t(cfg.resolved_head_dim()));
    w.set("llama.attention.value_length", uint32_t(cfg.resolved_head_dim()));
  }

  std::optional<GgmlType> file_type = type;
  for (const auto& [hf, shape] : llama_hf_tensor_shapes(cfg)) {
    LMLAB_CHECK(st.contains(hf), FormatError, "[gguf] '", wpath, "': missing tensor '", hf, "', expected shape ",
                shape_str(shape));
    Tensor t = st.get(hf);
    LMLAB_CHECK(t.shape() == shape, FormatError, "[gguf] '", wpath, "': tensor '", hf, "' has shape ",
                shape_str(t.shape()), ", expected ", shape_str(shape), " for the config");
    if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16) t = t.to(DType::F32);
    if (is_q(hf)) t = llama_permute_qk(t, cfg.num_attention_heads);
    if (is_k(hf)) t = llama_permute_qk(t, cfg.num_key_value_heads);
    GgmlType as = t.dim() == 1 ? GgmlType::F32 : type.value_or(ggml_of(t.dtype()));
    if (t.dim() == 2 && !file_type) file_type = as;
    w.add_tensor(*llama_hf_to_gguf_name(hf), t, as);
  }
  GgmlType ft = file_type.value_or(GgmlType::F32);
  w.set("general.file_type", uint32_t(ft == GgmlType::F32 ? 0 : ft == GgmlType::F16 ? 1 : 32));

  const std::string tpath = folder + "/tokenizer.json";
  if (fs::exists(tpath)) write_tokenizer(w, Tokenizer::from_file(tpath), cfg);
  w.write(out_gguf);
}

TransformerConfig llama_config_from_gguf(const GgufFile& f) {
  const std::string& arch = f.get_string("general.architecture");
  LMLAB_CHECK(arch == "llama", FormatError, "[gguf] '", f.path(), "': general.architecture is '", arch,
              "', expected 'llama' (the only supported architecture)");
  TransformerConfig cfg;
  cfg.architecture = "LlamaForCausalLM";
  cfg.hidden_size = f.get_int("llama.embedding_length");
  cfg.num_hidden_layers = f.get_int("llama.block_count");
  cfg.intermediate_size = f.get_int("llama.feed_forward_length");
  cfg.num_attention_heads = f.get_int("llama.attention.head_count");
  cfg.num_key_value_heads =
      f.has("llama.attention.head_count_kv") ? f.get_int("llama.attention.head_count_kv") : cfg.num_attention_heads;
  cfg.max_position_embeddings = f.get_int("llama.context_length");
  cfg.rms_norm_eps = tidy_f32(f.get_float("llama.attention.layer_norm_rms_epsilon"));
  cfg.rope_theta = f.has("llama.rope.freq_base") ? tidy_f32(f.get_float("llama.rope.freq_base")) : 10000.0;
  if (f.has("llama.attention.key_length")) cfg.head_dim = f.get_int("llama.attention.key_length");
  if (f.has("llama.vocab_size")) {
    cfg.vocab_size = f.get_int("llama.vocab_size");
  } else {
    LMLAB_CHECK(f.contains("token_embd.weight"), FormatError, "[gguf] '", f.path(),
                "': missing tensor 'token_embd.weight' (and no llama.vocab_size)");
    cfg.vocab_size = f.info("token_embd.weight").shape.at(0);
  }
  cfg.tie_word_embeddings = !f.contains("output.weight");
  if (f.has("tokenizer.ggml.bos_token_id")) cfg.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id");
  if (f.has("tokenizer.ggml.eos_token_id")) cfg.eos_token_id = f.get_int("tokenizer.ggml.eos_token_id");
  try {
    cfg.validate();
  } catch (const Error& e) {
    throw FormatError(str_cat("[gguf] '", f.path(), "': invalid llama metadata: ", e.what()));
  }
  return cfg;
}

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& f) {
  if (!f.has("tokenizer.ggml.tokens")) return nullptr;
  const std::string src = str_cat("[gguf] '", f.path(), "'");
  const std::string& model = f.get_string("tokenizer.ggml.model");
  LMLAB_CHECK(model == "gpt2", FormatError, src, ": tokenizer.ggml.model is '", model,
              "', expected 'gpt2' (byte-level BPE)");
  const auto& tokens = f.get_array("tokenizer.ggml.tokens").items;
  std::vector<GgufValue> no_types;
  const auto& types = f.has("tokenizer.ggml.token_type") ? f.get_array("tokenizer.ggml.token_type").items : no_types;
  LMLAB_CHECK(types.empty() || types.size() == tokens.size(), FormatError, src, ": tokenizer.ggml.token_type has ",
              types.size(), " entries, expected ", tokens.size());
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<AddedToken> added;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto* s = std::get_if<std::string>(&tokens[i].v);
    LMLAB_CHECK(s, FormatError, src, ": tokenizer.ggml.tokens[", i, "] is not a string");
    int64_t ty = 1;
    if (!types.empty()) {
      if (const auto* v = std::get_if<int32_t>(&types[i].v)) ty = *v;
      else if (const auto* u = std::get_if<uint32_t>(&types[i].v)) ty = *u;
      else throw FormatError(str_cat(src, ": tokenizer.ggml.token_type[", i, "] is not an integer"));
    }
    if (ty == 5) continue;  // unused hole
    if (ty == 3 || ty == 4) {
      AddedToken a;
      a.id = int32_t(i);
      a.content = *s;
      a.special = ty == 3;
      added.push_back(a);
    } else {
      vocab.emplace_back(*s, int32_t(i));
    }
  }
  std::vector<std::pair<std::string, std::string>> merges;
  if (f.has("tokenizer.ggml.merges")) {
    const auto& m = f.get_array("tokenizer.ggml.merges").items;
    for (size_t i = 0; i < m.size(); ++i) {
      const auto* s = std::get_if<std::string>(&m[i].v);
      size_t sp = s ? s->find(' ') : std::string::npos;
      LMLAB_CHECK(sp != std::string::npos, FormatError, src, ": tokenizer.ggml.merges[", i,
                  "] is not a string \"left right\"");
      merges.emplace_back(s->substr(0, sp), s->substr(sp + 1));
    }
  }
  const std::string pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  const bool llama3 = pre == "llama-bpe" || pre == "llama3";
  PreTokenizer pt = PreTokenizer::from_pattern(preset_pattern(llama3 ? PatternPreset::Llama3 : PatternPreset::Gpt2));
  auto tok = std::make_unique<Tokenizer>(
      Tokenizer::from_parts(vocab, merges, std::move(added), std::move(pt), llama3, src));
  if (f.has("tokenizer.ggml.bos_token_id")) tok->set_bos_id(int32_t(f.get_int("tokenizer.ggml.bos_token_id")));
  if (f.has("tokenizer.ggml.eos_token_id")) tok->set_eos_id(int32_t(f.get_int("tokenizer.ggml.eos_token_id")));
  if (f.has("tokenizer.ggml.padding_token_id")) tok->set_pad_id(int32_t(f.get_int("tokenizer.ggml.padding_token_id")));
  return tok;
}

GgufLlama load_gguf_llama(const std::string& path) {
  GgufFile f = GgufFile::open(path);
  TransformerConfig cfg = llama_config_from_gguf(f);
  std::map<std::string, Tensor> sd;
  for (const auto& [hf, shape] : llama_hf_tensor_shapes(cfg)) sd[hf] = read_hf_tensor(f, cfg, hf, shape, DType::F32);
  GgufLlama out;
  out.model = std::make_unique<Transformer>(cfg);
  try {
    out.model->load_state_dict(sd, true);
  } catch (const Error& e) {
    throw FormatError(str_cat("[gguf] '", path, "': ", e.what()));
  }
  out.model->train(false);
  out.tokenizer = tokenizer_from_gguf(f);
  if (out.tokenizer && !out.tokenizer->eos_id() && cfg.eos_token_id >= 0)
    out.tokenizer->set_eos_id(int32_t(cfg.eos_token_id));
  return out;
}

void gguf_to_hf_folder(const std::string& gguf, const std::string& out_folder) {
  GgufFile f = GgufFile::open(gguf);
  TransformerConfig cfg = llama_config_from_gguf(f);
  DType want = DType::F32;
  if (f.contains("token_embd.weight")) {
    GgmlType t = f.info("token_embd.weight").type;
    want = t == GgmlType::F16 ? DType::F16 : t == GgmlType::BF16 ? DType::BF16 : DType::F32;
  }
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [hf, shape] : llama_hf_tensor_shapes(cfg))
    tensors.emplace_back(hf, read_hf_tensor(f, cfg, hf, shape, want));
  std::unique_ptr<Tokenizer> tok = tokenizer_from_gguf(f);
  fs::create_directories(out_folder);
  write_file_atomic(out_folder + "/config.json", cfg.to_json());
  save_safetensors(out_folder + "/model.safetensors", tensors, {{"format", "pt"}});
  if (tok) tok->save(out_folder + "/tokenizer.json");
}

}  // namespace lmlab
