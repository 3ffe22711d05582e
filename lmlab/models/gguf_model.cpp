// GGUF <-> HF conversion and .gguf loading for llama / qwen2 / qwen3 / qwen3moe (see gguf_model.h).
// References: llama.cpp convert_hf_to_gguf.py (LlamaModel.permute, Qwen2/Qwen3/Qwen3Moe models),
// gguf-py constants.py (tensor names, {arch}.* metadata keys).
#include "lmlab/models/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "lmlab/core/file.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/ops/join.h"
#include "lmlab/models/gguf_tokenizer.h"
#include "lmlab/models/model_check.h"
#include "lmlab/models/stored_weights.h"

namespace fs = std::filesystem;

namespace lmlab {

namespace {

struct ArchSpec {
  const char* gguf;     // general.architecture
  const char* hf;       // architectures[0] written back to config.json
  bool permute_qk;      // llama.cpp permutes q/k rows for this architecture
};

const ArchSpec& arch_spec(const std::string& hf_arch) {
  static const std::map<std::string, ArchSpec> specs = {
      {"LlamaForCausalLM", {"llama", "LlamaForCausalLM", true}},
      {"MistralForCausalLM", {"llama", "LlamaForCausalLM", true}},
      {"Qwen2ForCausalLM", {"qwen2", "Qwen2ForCausalLM", false}},
      {"Qwen3ForCausalLM", {"qwen3", "Qwen3ForCausalLM", false}},
      {"Qwen3MoeForCausalLM", {"qwen3moe", "Qwen3MoeForCausalLM", false}},
  };
  auto it = specs.find(hf_arch);
  LMLAB_CHECK(it != specs.end(), FormatError, "[gguf] architecture '", hf_arch,
              "' has no GGUF mapping (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
              "Qwen3ForCausalLM, Qwen3MoeForCausalLM)");
  return it->second;
}

const char* hf_arch_of_gguf(const std::string& arch, const std::string& path) {
  if (arch == "llama") return "LlamaForCausalLM";
  if (arch == "qwen2") return "Qwen2ForCausalLM";
  if (arch == "qwen3") return "Qwen3ForCausalLM";
  if (arch == "qwen3moe") return "Qwen3MoeForCausalLM";
  throw FormatError(str_cat("[gguf] '", path, "': general.architecture is '", arch,
                            "' (supported: llama, qwen2, qwen3, qwen3moe)"));
}

bool has_qk_norm(const TransformerConfig& c) { return c.has_qk_norm(); }
bool has_qkv_bias(const TransformerConfig& c) { return c.attention_bias || c.architecture == "Qwen2ForCausalLM"; }

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

DType dtype_of_ggml(GgmlType t) {
  return t == GgmlType::F16 ? DType::F16 : t == GgmlType::BF16 ? DType::BF16 : DType::F32;
}

// Row permutation shared by the tensor and QMatrix forms: GGUF row of HF row r.
template <class Copy>
void permute_rows(int64_t rows, int64_t n_head, bool inverse, Copy&& copy_row) {
  const int64_t D = rows / n_head, half = D / 2;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t j = 0; j < half; ++j)
      for (int64_t k = 0; k < 2; ++k) {
        int64_t hf_row = h * D + k * half + j, gg_row = h * D + 2 * j + k;
        copy_row(inverse ? gg_row : hf_row, inverse ? hf_row : gg_row);
      }
}

void check_permutable(int64_t rows, int64_t n_head) {
  LMLAB_CHECK(n_head > 0 && rows % n_head == 0 && (rows / n_head) % 2 == 0, ShapeError, "[gguf] q/k permute: ",
              rows, " rows are not n_head (", n_head, ") x an even head_dim");
}

}  // namespace

std::string gguf_arch_name(const TransformerConfig& cfg) { return arch_spec(cfg.architecture).gguf; }

std::vector<GgufTensorSlot> gguf_tensor_slots(const TransformerConfig& cfg) {
  const ArchSpec& spec = arch_spec(cfg.architecture);
  const int64_t C = cfg.hidden_size, D = cfg.resolved_head_dim(), V = cfg.vocab_size;
  const int64_t Hq = cfg.num_attention_heads, Hkv = cfg.num_key_value_heads, Q = Hq * D, K = Hkv * D;
  std::vector<GgufTensorSlot> out;
  out.push_back({"model.embed_tokens.weight", {V, C}, "token_embd.weight"});
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = str_cat("model.layers.", i, "."), b = str_cat("blk.", i, ".");
    out.push_back({p + "input_layernorm.weight", {C}, b + "attn_norm.weight"});
    out.push_back({p + "self_attn.q_proj.weight", {Q, C}, b + "attn_q.weight", -1, spec.permute_qk ? Hq : 0});
    out.push_back({p + "self_attn.k_proj.weight", {K, C}, b + "attn_k.weight", -1, spec.permute_qk ? Hkv : 0});
    out.push_back({p + "self_attn.v_proj.weight", {K, C}, b + "attn_v.weight"});
    if (has_qkv_bias(cfg)) {
      LMLAB_CHECK(!spec.permute_qk, FormatError, "[gguf] q/k biases with the llama layout are not supported");
      out.push_back({p + "self_attn.q_proj.bias", {Q}, b + "attn_q.bias"});
      out.push_back({p + "self_attn.k_proj.bias", {K}, b + "attn_k.bias"});
      out.push_back({p + "self_attn.v_proj.bias", {K}, b + "attn_v.bias"});
    }
    if (has_qk_norm(cfg)) {
      out.push_back({p + "self_attn.q_norm.weight", {D}, b + "attn_q_norm.weight"});
      out.push_back({p + "self_attn.k_norm.weight", {D}, b + "attn_k_norm.weight"});
    }
    out.push_back({p + "self_attn.o_proj.weight", {C, Q}, b + "attn_output.weight"});
    if (cfg.attention_bias && cfg.architecture != "Qwen2ForCausalLM")
      out.push_back({p + "self_attn.o_proj.bias", {C}, b + "attn_output.bias"});
    out.push_back({p + "post_attention_layernorm.weight", {C}, b + "ffn_norm.weight"});
    if (cfg.is_moe_layer(i)) {
      const int64_t E = cfg.num_experts, I = cfg.moe_intermediate_size;
      out.push_back({p + "mlp.gate.weight", {E, C}, b + "ffn_gate_inp.weight"});
      for (int64_t e = 0; e < E; ++e) {
        const std::string x = str_cat(p, "mlp.experts.", e, ".");
        out.push_back({x + "gate_proj.weight", {I, C}, b + "ffn_gate_exps.weight", e});
        out.push_back({x + "up_proj.weight", {I, C}, b + "ffn_up_exps.weight", e});
        out.push_back({x + "down_proj.weight", {C, I}, b + "ffn_down_exps.weight", e});
      }
    } else {
      const int64_t I = cfg.intermediate_size;
      out.push_back({p + "mlp.gate_proj.weight", {I, C}, b + "ffn_gate.weight"});
      out.push_back({p + "mlp.up_proj.weight", {I, C}, b + "ffn_up.weight"});
      out.push_back({p + "mlp.down_proj.weight", {C, I}, b + "ffn_down.weight"});
    }
  }
  out.push_back({"model.norm.weight", {C}, "output_norm.weight"});
  if (!cfg.tie_word_embeddings) out.push_back({"lm_head.weight", {V, C}, "output.weight"});
  return out;
}

std::optional<std::string> hf_to_gguf_name(const TransformerConfig& cfg, const std::string& hf) {
  for (const auto& s : gguf_tensor_slots(cfg))
    if (s.hf == hf) return s.gguf;
  return std::nullopt;
}

Tensor gguf_permute_qk(const Tensor& w, int64_t n_head, bool inverse) {
  LMLAB_CHECK(w.dim() == 2, ShapeError, "[gguf] q/k permute: expected a matrix, got ", shape_str(w.shape()));
  check_permutable(w.size(0), n_head);
  Tensor src = w.contiguous();
  Tensor out = Tensor::empty(w.shape(), w.dtype());
  const size_t row = size_t(w.size(1)) * dtype_size(w.dtype());
  const auto* s = static_cast<const char*>(src.raw_data());
  auto* d = static_cast<char*>(out.raw_data());
  permute_rows(w.size(0), n_head, inverse,
               [&](int64_t from, int64_t to) { std::memcpy(d + size_t(to) * row, s + size_t(from) * row, row); });
  return out;
}

QMatrix gguf_permute_qk(const QMatrix& w, int64_t n_head, bool inverse) {
  check_permutable(w.rows, n_head);
  const size_t row = w.row_bytes();
  std::shared_ptr<uint8_t[]> buf(new uint8_t[w.nbytes()]);
  permute_rows(w.rows, n_head, inverse,
               [&](int64_t from, int64_t to) { std::memcpy(buf.get() + size_t(to) * row, w.row(from), row); });
  return QMatrix::wrap(w.type, w.rows, w.cols, std::shared_ptr<const uint8_t>(buf, buf.get()), w.nbytes());
}

namespace {

// lmlab's own keys next to rope_freqs.weight: the HF llama3 parameters the factors came from, so a
// GGUF written here converts back to the same config.json (llama.cpp reads only the tensor).
constexpr const char* kLlama3Keys[] = {"lmlab.rope.llama3.factor", "lmlab.rope.llama3.low_freq_factor",
                                       "lmlab.rope.llama3.high_freq_factor",
                                       "lmlab.rope.llama3.original_context_length"};

// The model's rope factors under `scaling` (rope_freq_factors).
std::vector<double> factors_of(const TransformerConfig& cfg, const RopeScaling& scaling) {
  RopeConfig r;
  r.head_dim = cfg.resolved_head_dim();
  r.theta = cfg.rope_theta;
  r.scaling = scaling;
  return rope_freq_factors(r);
}

// Whether `scaling` gives the stored factors `ff` (to their f32 precision); false when it is invalid.
bool reproduces(const std::vector<double>& ff, const TransformerConfig& cfg, const RopeScaling& scaling) {
  std::vector<double> got;
  try {
    got = factors_of(cfg, scaling);
  } catch (const Error&) {
    return false;
  }
  if (got.size() != ff.size()) return false;
  for (size_t i = 0; i < ff.size(); ++i)
    if (!(std::fabs(ff[i] - got[i]) <= 1e-5 * std::fabs(ff[i]))) return false;
  return true;
}

// HF llama3 parameters that reproduce `ff` (llama.cpp's factors: 1 for short wavelengths, `factor`
// for long ones, 1 / ((1 - s) / factor + s) between, s linear in 1 / wavelength). Only the ratios of
// the original context to low/high_freq_factor are determined; the context is taken as 8192 (the
// Llama 3.1-3.3 value, which then gives their low 1 / high 4 exactly).
std::optional<RopeScaling> llama3_of_factors(const std::vector<double>& ff, const TransformerConfig& cfg) {
  RopeScaling s;
  s.type = RopeScaling::Type::Llama3;
  s.original_max_position = 8192;
  s.factor = *std::max_element(ff.begin(), ff.end());
  if (!(s.factor > 1)) return std::nullopt;
  const double L = double(s.original_max_position), rot = double(2 * ff.size());
  // (L / wavelength, s) of the pairs strictly between the two plateaus
  std::vector<std::pair<double, double>> mid;
  for (size_t i = 0; i < ff.size(); ++i) {
    if (ff[i] <= 1 + 1e-6 || ff[i] >= s.factor * (1 - 1e-6)) continue;
    double inv_freq = std::pow(cfg.rope_theta, -double(2 * i) / rot);
    mid.emplace_back(L * inv_freq / (2 * 3.14159265358979323846), (1 / ff[i] - 1 / s.factor) / (1 - 1 / s.factor));
  }
  if (mid.size() >= 2) {
    const auto& a = mid.front();
    const auto& b = mid.back();
    const double slope = (a.second - b.second) / (a.first - b.first);  // 1 / (high - low)
    if (!(slope > 0)) return std::nullopt;
    s.low_freq_factor = a.first - a.second / slope;
    s.high_freq_factor = s.low_freq_factor + 1 / slope;
  }  // else keep HF's defaults low 1 / high 4 and let the check below decide
  if (!reproduces(ff, cfg, s)) return std::nullopt;
  return s;
}

// rope_freqs.weight (llama.cpp's per-pair divisors of the inverse frequencies, written for HF
// llama3 scaling) -> cfg.rope_scaling: llama3 parameters when they reproduce the factors, the
// factors themselves otherwise.
void read_rope_freqs(const GgufFile& f, const std::string& arch, TransformerConfig& cfg) {
  const auto& info = f.info("rope_freqs.weight");
  const int64_t half = cfg.resolved_head_dim() / 2;
  LMLAB_CHECK(info.shape == (Shape{half}), FormatError, "[gguf] '", f.path(), "': tensor 'rope_freqs.weight' has shape ",
              shape_str(info.shape), ", expected [", half, "] (head_dim / 2)");
  LMLAB_CHECK(cfg.rope_scaling.type == RopeScaling::Type::None, FormatError, "[gguf] '", f.path(),
              "': rope_freqs.weight together with ", arch, ".rope.scaling.type is not supported");
  std::vector<float> stored = f.get_tensor("rope_freqs.weight", DType::F32).to_vector<float>();
  std::vector<double> ff(stored.begin(), stored.end());
  for (double v : ff)
    LMLAB_CHECK(std::isfinite(v) && v > 0, FormatError, "[gguf] '", f.path(),
                "': tensor 'rope_freqs.weight' holds ", v, "; rope factors must be finite and positive");
  if (f.has(kLlama3Keys[0])) {
    RopeScaling s;
    s.type = RopeScaling::Type::Llama3;
    s.factor = tidy_f32(f.get_float(kLlama3Keys[0]));
    s.low_freq_factor = tidy_f32(f.get_float(kLlama3Keys[1]));
    s.high_freq_factor = tidy_f32(f.get_float(kLlama3Keys[2]));
    s.original_max_position = f.get_int(kLlama3Keys[3]);
    LMLAB_CHECK(reproduces(ff, cfg, s), FormatError, "[gguf] '", f.path(),
                "': rope_freqs.weight does not match the llama3 parameters in ", kLlama3Keys[0], " ...");
    cfg.rope_scaling = s;
    return;
  }
  if (auto s = llama3_of_factors(ff, cfg)) {
    cfg.rope_scaling = *s;
    return;
  }
  cfg.rope_scaling.freq_factors = ff;
}

}  // namespace

TransformerConfig gguf_model_config(const GgufFile& f) {
  const std::string& arch = f.get_string("general.architecture");
  TransformerConfig cfg;
  cfg.architecture = hf_arch_of_gguf(arch, f.path());
  auto key = [&](const char* k) { return arch + "." + k; };
  TensorShapes shapes;
  for (const auto& ti : f.tensors()) shapes.emplace(ti.name, ti.shape);
  cfg.hidden_size = f.get_int(key("embedding_length"));
  cfg.num_hidden_layers = f.get_int(key("block_count"));
  // The sizes the metadata gives are held to the tensors the file has, before anything loops over
  // layers or allocates (the rest once the config is valid, below).
  check_layer_count(cfg.num_hidden_layers, layer_indices(shapes, "blk."), "blk.", key("block_count"), f.path(),
                    f.path());
  cfg.intermediate_size = f.has(key("feed_forward_length")) ? f.get_int(key("feed_forward_length")) : 0;
  cfg.num_attention_heads = f.get_int(key("attention.head_count"));
  cfg.num_key_value_heads =
      f.has(key("attention.head_count_kv")) ? f.get_int(key("attention.head_count_kv")) : cfg.num_attention_heads;
  cfg.max_position_embeddings = f.get_int(key("context_length"));
  cfg.rms_norm_eps = tidy_f32(f.get_float(key("attention.layer_norm_rms_epsilon")));
  cfg.rope_theta = f.has(key("rope.freq_base")) ? tidy_f32(f.get_float(key("rope.freq_base"))) : 10000.0;
  if (f.has(key("attention.key_length"))) cfg.head_dim = f.get_int(key("attention.key_length"));
  if (f.has(key("vocab_size"))) {
    cfg.vocab_size = f.get_int(key("vocab_size"));
  } else {
    LMLAB_CHECK(f.contains("token_embd.weight"), FormatError, "[gguf] '", f.path(),
                "': missing tensor 'token_embd.weight' (and no ", key("vocab_size"), ")");
    const Shape& e = f.info("token_embd.weight").shape;
    LMLAB_CHECK(e.size() == 2, FormatError, "[gguf] '", f.path(), "': tensor 'token_embd.weight' has shape ",
                shape_str(e), ", expected [vocab, embedding_length]");
    cfg.vocab_size = e[0];
  }
  if (f.has(key("rope.scaling.type"))) {
    const std::string& t = f.get_string(key("rope.scaling.type"));
    using T = RopeScaling::Type;
    if (t == "linear" || t == "yarn") {
      cfg.rope_scaling.type = t == "linear" ? T::Linear : T::Yarn;
      cfg.rope_scaling.factor = tidy_f32(f.get_float(key("rope.scaling.factor")));
      if (f.has(key("rope.scaling.original_context_length")))
        cfg.rope_scaling.original_max_position = f.get_int(key("rope.scaling.original_context_length"));
      if (f.has(key("rope.scaling.yarn_beta_fast")))
        cfg.rope_scaling.beta_fast = tidy_f32(f.get_float(key("rope.scaling.yarn_beta_fast")));
      if (f.has(key("rope.scaling.yarn_beta_slow")))
        cfg.rope_scaling.beta_slow = tidy_f32(f.get_float(key("rope.scaling.yarn_beta_slow")));
    } else {
      LMLAB_CHECK(t == "none", FormatError, "[gguf] '", f.path(), "': ", key("rope.scaling.type"), " is '", t,
                  "' (supported: none, linear, yarn)");
    }
  }
  LMLAB_CHECK(cfg.num_attention_heads > 0, FormatError, "[gguf] '", f.path(), "': ", key("attention.head_count"),
              " must be positive, got ", cfg.num_attention_heads);
  if (f.contains("rope_freqs.weight")) read_rope_freqs(f, arch, cfg);
  if (arch == "qwen3moe") {
    cfg.num_experts = f.get_int(key("expert_count"));
    cfg.num_experts_per_tok = f.get_int(key("expert_used_count"));
    cfg.moe_intermediate_size = f.get_int(key("expert_feed_forward_length"));
    cfg.norm_topk_prob = f.has(key("expert_weights_norm")) ? f.get_bool(key("expert_weights_norm")) : true;
    cfg.decoder_sparse_step = 1;
    // Layers stored with a dense FFN (ffn_gate.weight) are HF's mlp_only_layers.
    cfg.mlp_only_layers.clear();
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i)
      if (f.contains(str_cat("blk.", i, ".ffn_gate.weight"))) cfg.mlp_only_layers.push_back(i);
    if (cfg.intermediate_size == 0) cfg.intermediate_size = cfg.moe_intermediate_size;
  }
  cfg.attention_bias = f.contains("blk.0.attn_q.bias");
  cfg.tie_word_embeddings = !f.contains("output.weight");
  // a token id outside int32 is no token
  for (auto [k, dst] : {std::pair{"tokenizer.ggml.bos_token_id", &cfg.bos_token_id},
                        std::pair{"tokenizer.ggml.eos_token_id", &cfg.eos_token_id}})
    if (f.has(k) && f.get_int(k) >= 0 && f.get_int(k) <= INT32_MAX) *dst = f.get_int(k);
  try {
    cfg.validate();
  } catch (const Error& e) {
    throw FormatError(str_cat("[gguf] '", f.path(), "': invalid ", arch, " metadata: ", e.what()));
  }
  if (f.contains("token_embd.weight")) {
    const Shape& e = f.info("token_embd.weight").shape;
    LMLAB_CHECK(e == (Shape{cfg.vocab_size, cfg.hidden_size}), FormatError, "[gguf] '", f.path(), "': ",
                key("vocab_size"), " = ", cfg.vocab_size, " and ", key("embedding_length"), " = ", cfg.hidden_size,
                " do not match tensor 'token_embd.weight' of shape ", shape_str(e));
  }
  const int64_t need = model_state_numel(cfg), have = total_numel(shapes);
  LMLAB_CHECK(need <= value_bound(have), FormatError, "[gguf] '", f.path(), "': the ", arch, " metadata describes a model of ", need,
              " values (", key("block_count"), " ", cfg.num_hidden_layers, ", ", key("embedding_length"), " ",
              cfg.hidden_size, ", ", key("feed_forward_length"), " ", cfg.intermediate_size,
              cfg.num_experts > 0 ? str_cat(", ", key("expert_count"), " ", cfg.num_experts) : std::string(),
              "), but its tensors hold only ", have);
  return cfg;
}

void write_gguf_model_config(GgufWriter& w, const TransformerConfig& cfg, const std::string& name) {
  const std::string arch = gguf_arch_name(cfg);
  auto key = [&](const char* k) { return arch + "." + k; };
  LMLAB_CHECK(cfg.sliding_window == 0, FormatError, "[gguf] sliding_window (", cfg.sliding_window,
              ") has no GGUF form for architecture '", arch, "'");
  w.set("general.architecture", arch);
  w.set("general.name", name);
  w.set(key("vocab_size"), uint32_t(cfg.vocab_size));
  w.set(key("context_length"), uint32_t(cfg.max_position_embeddings));
  w.set(key("embedding_length"), uint32_t(cfg.hidden_size));
  w.set(key("block_count"), uint32_t(cfg.num_hidden_layers));
  w.set(key("feed_forward_length"), uint32_t(cfg.intermediate_size));
  w.set(key("attention.head_count"), uint32_t(cfg.num_attention_heads));
  w.set(key("attention.head_count_kv"), uint32_t(cfg.num_key_value_heads));
  w.set(key("rope.freq_base"), float(cfg.rope_theta));
  w.set(key("attention.layer_norm_rms_epsilon"), float(cfg.rms_norm_eps));
  w.set(key("rope.dimension_count"), uint32_t(cfg.resolved_head_dim()));
  if (has_qk_norm(cfg) || cfg.resolved_head_dim() * cfg.num_attention_heads != cfg.hidden_size) {
    w.set(key("attention.key_length"), uint32_t(cfg.resolved_head_dim()));
    w.set(key("attention.value_length"), uint32_t(cfg.resolved_head_dim()));
  }
  using T = RopeScaling::Type;
  const RopeScaling& rs = cfg.rope_scaling;
  if (rs.type == T::Llama3 || !rs.freq_factors.empty()) {
    // llama.cpp's form: per-pair divisors of the inverse frequencies as the tensor rope_freqs.weight
    // (read for its llama architecture only).
    LMLAB_CHECK(arch == "llama" && (rs.type == T::Llama3 || rs.type == T::None), FormatError,
                "[gguf] per-frequency rope factors (rope_scaling llama3 or explicit factors) have no GGUF form for ",
                "architecture '", arch, "'", rs.type == T::None ? "" : " together with linear / yarn scaling");
    std::vector<double> ff = factors_of(cfg, rs);
    std::vector<float> f32(ff.begin(), ff.end());
    w.add_tensor("rope_freqs.weight", Tensor::from_vector(f32, {int64_t(f32.size())}), GgmlType::F32);
    if (rs.type == T::Llama3) {
      w.set(kLlama3Keys[0], float(rs.factor));
      w.set(kLlama3Keys[1], float(rs.low_freq_factor));
      w.set(kLlama3Keys[2], float(rs.high_freq_factor));
      w.set(kLlama3Keys[3], uint32_t(rs.original_max_position));
    }
  }
  if (rs.type == T::Linear || rs.type == T::Yarn) {
    w.set(key("rope.scaling.type"), rs.type == T::Linear ? "linear" : "yarn");
    w.set(key("rope.scaling.factor"), float(rs.factor));
    if (rs.type == T::Yarn) {
      w.set(key("rope.scaling.original_context_length"), uint32_t(rs.original_max_position));
      w.set(key("rope.scaling.yarn_beta_fast"), float(rs.beta_fast));
      w.set(key("rope.scaling.yarn_beta_slow"), float(rs.beta_slow));
      LMLAB_CHECK(rs.attention_factor == 0.0, FormatError,
                  "[gguf] yarn with an explicit attention_factor has no GGUF form here");
    }
  }
  LMLAB_CHECK(cfg.n_shared_experts == 0 && cfg.scoring_func == "softmax" && cfg.routed_scaling_factor == 1.0,
              FormatError, "[gguf] shared experts, sigmoid routing and routed_scaling_factor (lmlab MoE extensions) ",
              "have no qwen3moe GGUF form");
  if (cfg.num_experts > 0) {
    w.set(key("expert_count"), uint32_t(cfg.num_experts));
    w.set(key("expert_used_count"), uint32_t(cfg.num_experts_per_tok));
    w.set(key("expert_feed_forward_length"), uint32_t(cfg.moe_intermediate_size));
    if (!cfg.norm_topk_prob) w.set(key("expert_weights_norm"), false);
  }
}

namespace {

// The tensor of `slot` in `f` (expert slices cut out of the stacked tensor), checked against the
// slot's shape, rows un-permuted, as `want`.
Tensor read_slot(const GgufFile& f, const GgufTensorSlot& s, DType want) {
  LMLAB_CHECK(f.contains(s.gguf), FormatError, "[gguf] '", f.path(), "': missing tensor '", s.gguf, "' (", s.hf,
              ")");
  const auto& info = f.info(s.gguf);
  Tensor t;
  if (s.expert >= 0) {
    LMLAB_CHECK(info.shape.size() == 3 && info.shape[1] == s.shape[0] && info.shape[2] == s.shape[1] &&
                    s.expert < info.shape[0],
                FormatError, "[gguf] '", f.path(), "': tensor '", s.gguf, "' has shape ", shape_str(info.shape),
                ", expected [experts > ", s.expert, ", ", s.shape[0], ", ", s.shape[1], "]");
    auto raw = f.raw(s.gguf);
    const size_t per = raw.size() / size_t(info.shape[0]);
    std::vector<float> buf(static_cast<size_t>(s.shape[0] * s.shape[1]));
    ggml_dequantize(info.type, raw.data() + per * size_t(s.expert), buf.data(), s.shape[0] * s.shape[1]);
    t = Tensor::from_vector(buf, s.shape).to(want);
  } else {
    LMLAB_CHECK(info.shape == s.shape, FormatError, "[gguf] '", f.path(), "': tensor '", s.gguf, "' has shape ",
                shape_str(info.shape), ", expected ", shape_str(s.shape), " for the config");
    t = f.get_tensor(s.gguf, want);
  }
  if (s.permute > 0) t = gguf_permute_qk(t, s.permute, true);
  return t;
}

// The stored matrix of `slot`, zero-copy from the mapping unless rows must be un-permuted.
QMatrix read_slot_q(const GgufFile& f, const GgufTensorSlot& s) {
  const auto& info = f.info(s.gguf);
  std::shared_ptr<const uint8_t> bytes = f.raw_shared(s.gguf);
  size_t size = info.nbytes;
  if (s.expert >= 0) {
    size /= size_t(info.shape[0]);
    bytes = std::shared_ptr<const uint8_t>(bytes, bytes.get() + size * size_t(s.expert));
  }
  QMatrix q = QMatrix::wrap(info.type, s.shape[0], s.shape[1], bytes, size);
  return s.permute > 0 ? gguf_permute_qk(q, s.permute, true) : q;
}

bool is_matrix_weight(const std::string& hf) {
  return hf.ends_with("_proj.weight") || hf == "lm_head.weight";
}

std::string folder_name(const std::string& folder) {
  fs::path p = fs::path(folder).lexically_normal();
  std::string n = p.filename().string();
  return n.empty() ? p.parent_path().filename().string() : n;
}

}  // namespace

GgufModel load_gguf_model(const std::string& path, const GgufLoadOptions& opt) {
  GgufFile f = GgufFile::open(path);
  TransformerConfig cfg = gguf_model_config(f);
  GgufModel out;
  // A tied head whose embedding is stored quantized runs as its own quantized Linear over the same
  // bytes (laid out for decoding, see fuse_quantized_weights), as llama.cpp does: the head is the
  // largest product per token. A quantized embedding is looked up in its stored type (qembedding).
  const bool quantized_tied_head = opt.keep_quantized && cfg.tie_word_embeddings && f.contains("token_embd.weight") &&
                                   f.info("token_embd.weight").type != GgmlType::F32;
  {
    SkipInit skip;  // every value is loaded below
    TransformerConfig build = cfg;
    if (quantized_tied_head) build.tie_word_embeddings = false;
    out.model = std::make_unique<Transformer>(build);
    out.model->cfg.tie_word_embeddings = cfg.tie_word_embeddings;
  }
  if (quantized_tied_head) {
    const auto& info = f.info("token_embd.weight");
    LMLAB_CHECK(info.shape == (Shape{cfg.vocab_size, cfg.hidden_size}), FormatError, "[gguf] '", path,
                "': tensor 'token_embd.weight' has shape ", shape_str(info.shape), ", expected [", cfg.vocab_size, ", ",
                cfg.hidden_size, "]");
    out.model->lm_head->set_quantized(
        QMatrix::wrap(info.type, cfg.vocab_size, cfg.hidden_size, f.raw_shared("token_embd.weight"), info.nbytes));
    ++out.quantized_matrices;
  }
  std::map<std::string, Tensor> sd;
  for (const GgufTensorSlot& s : gguf_tensor_slots(cfg)) {
    LMLAB_CHECK(f.contains(s.gguf), FormatError, "[gguf] '", path, "': missing tensor '", s.gguf, "' (", s.hf, ")");
    const GgmlType type = f.info(s.gguf).type;
    if (opt.keep_quantized && type != GgmlType::F32 && s.hf == "model.embed_tokens.weight") {
      const auto& info = f.info(s.gguf);
      LMLAB_CHECK(info.shape == s.shape, FormatError, "[gguf] '", path, "': tensor '", s.gguf, "' has shape ",
                  shape_str(info.shape), ", expected ", shape_str(s.shape), " for the config");
      out.model->model->embed_tokens->set_quantized(read_slot_q(f, s));  // zero-copy from the mapping
      continue;
    }
    if (opt.keep_quantized && type != GgmlType::F32 && is_matrix_weight(s.hf)) {
      auto lin = std::dynamic_pointer_cast<Linear>(out.model->find_module(s.hf.substr(0, s.hf.size() - 7)));
      if (lin) {
        if (s.expert < 0) {
          const auto& info = f.info(s.gguf);
          LMLAB_CHECK(info.shape == s.shape, FormatError, "[gguf] '", path, "': tensor '", s.gguf, "' has shape ",
                      shape_str(info.shape), ", expected ", shape_str(s.shape), " for the config");
        } else {
          read_slot(f, s, DType::F32);  // shape checks only (experts are small)
        }
        lin->set_quantized(read_slot_q(f, s));
        ++out.quantized_matrices;
        continue;
      }
    }
    sd[s.hf] = read_slot(f, s, DType::F32);
  }
  try {
    out.model->load_state_dict(sd, true);
  } catch (const Error& e) {
    throw FormatError(str_cat("[gguf] '", path, "': ", e.what()));
  }
  fuse_quantized_weights(*out.model);
  out.model->train(false);
  out.tokenizer = tokenizer_from_gguf(f);
  if (out.tokenizer && !out.tokenizer->eos_id() && cfg.eos_token_id >= 0 &&
      cfg.eos_token_id < out.tokenizer->vocab_size())
    out.tokenizer->set_eos_id(int32_t(cfg.eos_token_id));
  return out;
}

void hf_folder_to_gguf(const std::string& folder, const std::string& out_gguf, std::optional<GgmlType> type) {
  LMLAB_CHECK(!type || *type == GgmlType::F32 || *type == GgmlType::F16 || *type == GgmlType::BF16, ValueError,
              "[gguf] convert: only f32, f16 and bf16 output types are supported (then `lmlab quantize`)");
  const std::string cpath = folder + "/config.json";
  LMLAB_CHECK(fs::exists(cpath), IoError, "[gguf] '", folder, "' has no config.json");
  SafetensorsShards st = SafetensorsShards::open_folder(folder);
  TransformerConfig cfg = config_for_weights(read_text_file(cpath, "gguf"), cpath, tensor_shapes(st), st.source());

  GgufWriter w;
  write_gguf_model_config(w, cfg, folder_name(folder));
  std::optional<GgmlType> file_type = type;
  auto get = [&](const GgufTensorSlot& s) {
    LMLAB_CHECK(st.contains(s.hf), FormatError, "[gguf] '", st.source(), "': missing tensor '", s.hf,
                "', expected shape ", shape_str(s.shape));
    Tensor t = st.get(s.hf);
    LMLAB_CHECK(t.shape() == s.shape, FormatError, "[gguf] '", st.source(), "': tensor '", s.hf, "' has shape ",
                shape_str(t.shape()), ", expected ", shape_str(s.shape), " for the config");
    if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16) t = t.to(DType::F32);
    return t;
  };
  // Tensors are views of the mapped shards; each is permuted / stacked / converted only when the
  // file is written, one at a time, so a converted model never sits in memory whole.
  const auto slots = gguf_tensor_slots(cfg);
  for (size_t k = 0; k < slots.size(); ++k) {
    const GgufTensorSlot& s = slots[k];
    if (s.expert > 0) continue;  // written with expert 0
    std::vector<Tensor> parts;   // every expert of this projection, stacked to [E, rows, cols]
    if (s.expert == 0) {
      for (size_t j = k; j < slots.size(); ++j)
        if (slots[j].gguf == s.gguf) parts.push_back(get(slots[j]));
    } else {
      parts.push_back(get(s));
    }
    Shape shape = parts[0].shape();
    if (s.expert == 0) shape.insert(shape.begin(), int64_t(parts.size()));
    GgmlType as = shape.size() == 1 ? GgmlType::F32 : type.value_or(ggml_of(parts[0].dtype()));
    if (shape.size() >= 2 && !file_type) file_type = as;
    w.add_lazy(s.gguf, shape, as, [parts, expert = s.expert, permute = s.permute, name = s.gguf, as] {
      Tensor t = expert == 0 ? stack(parts, 0) : permute > 0 ? gguf_permute_qk(parts[0], permute) : parts[0];
      return GgufWriter::encode(name, t, as);
    });
  }
  GgmlType ft = file_type.value_or(GgmlType::F32);
  w.set("general.file_type", uint32_t(ft == GgmlType::F32 ? 0 : ft == GgmlType::F16 ? 1 : 32));
  const std::string tpath = folder + "/tokenizer.json";
  if (fs::exists(tpath)) write_gguf_tokenizer(w, Tokenizer::from_file(tpath), cfg.bos_token_id, cfg.eos_token_id);
  w.write(out_gguf);
}

void gguf_to_hf_folder(const std::string& gguf, const std::string& out_folder) {
  GgufFile f = GgufFile::open(gguf);
  TransformerConfig cfg = gguf_model_config(f);
  LMLAB_CHECK(cfg.rope_scaling.freq_factors.empty(), FormatError, "[gguf] '", gguf,
              "': its rope_freqs.weight matches no Hugging Face rope_scaling type (llama3 parameters were tried), ",
              "so it has no config.json form; load the .gguf directly");
  DType want = f.contains("token_embd.weight") ? dtype_of_ggml(f.info("token_embd.weight").type) : DType::F32;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const GgufTensorSlot& s : gguf_tensor_slots(cfg)) tensors.emplace_back(s.hf, read_slot(f, s, want));
  std::unique_ptr<Tokenizer> tok = tokenizer_from_gguf(f);
  fs::create_directories(out_folder);
  write_file_atomic(out_folder + "/config.json", cfg.to_json(), "gguf");
  save_safetensors(out_folder + "/model.safetensors", tensors, {{"format", "pt"}});
  if (tok) tok->save(out_folder + "/tokenizer.json");
}

}  // namespace lmlab
