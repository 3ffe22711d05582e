// Shared by the model-building fuzz targets and the seed writer: three tiny checkpoints held in
// memory (a tied Llama in f32, a Qwen3-MoE in bf16 with a dense layer, a Kimi-Linear hybrid with
// KDA, MLA and a sigmoid-routed MoE with a shared expert), each an HfFolder as load_hf_model takes it.
// A config.json under test is loaded against each; the seeds are their own config.json files.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/infer/model_loader.h"
#include "lmlab/io/hf.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/models/transformer.h"
#include "lmlab/nn/module.h"

namespace lmlab::fuzz {

struct FixedCheckpoint {
  std::string name;
  TransformerConfig cfg;
  HfFolder folder;  // config_json = cfg.to_json(); weights: one in-memory file via an index
};

inline TransformerConfig fixed_llama() {
  TransformerConfig c;
  c.vocab_size = 24;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.max_position_embeddings = 16;
  c.tie_word_embeddings = true;
  return c;
}

inline TransformerConfig fixed_qwen3_moe() {
  TransformerConfig c = fixed_llama();
  c.architecture = "Qwen3MoeForCausalLM";
  c.tie_word_embeddings = false;
  c.num_experts = 3;
  c.num_experts_per_tok = 2;
  c.moe_intermediate_size = 8;
  c.mlp_only_layers = {0};
  c.head_dim = 8;
  return c;
}

inline TransformerConfig fixed_kimi() {
  TransformerConfig c = fixed_llama();
  c.architecture = "KimiLinearForCausalLM";
  c.num_hidden_layers = 2;
  c.tie_word_embeddings = false;
  c.layer_pattern = "KM";
  c.linear_num_heads = 2;
  c.linear_head_dim = 8;
  c.short_conv_kernel_size = 2;
  c.kv_lora_rank = 8;
  c.qk_nope_head_dim = 4;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 4;
  c.num_experts = 2;
  c.num_experts_per_tok = 1;
  c.moe_intermediate_size = 8;
  c.n_shared_experts = 1;
  c.scoring_func = "sigmoid";
  c.first_k_dense_replace = 1;
  return c;
}

inline FixedCheckpoint make_fixed(const std::string& name, const TransformerConfig& cfg, DType dtype) {
  FixedCheckpoint f{name, cfg, {}};
  Transformer m(cfg, 7);
  std::vector<std::pair<std::string, Tensor>> tensors;
  SafetensorsIndex idx;
  for (auto& [n, t] : m.state_dict()) {
    Tensor c = Tensor::empty(t.shape(), t.dim() == 2 ? dtype : DType::F32);
    copy_into(c, t);
    tensors.emplace_back(n, c);
    idx.weight_map[n] = "model.safetensors";
  }
  std::map<std::string, SafetensorsFile> files;
  files.emplace("model.safetensors", SafetensorsFile::from_bytes(safetensors_bytes(tensors), name + "/model.safetensors"));
  f.folder.folder = name;
  f.folder.config_path = name + "/config.json";
  f.folder.config_json = cfg.to_json();
  f.folder.weights = SafetensorsShards::assemble(name + "/model.safetensors.index.json", idx, files);
  return f;
}

inline const std::vector<FixedCheckpoint>& fixed_checkpoints() {
  static const std::vector<FixedCheckpoint> all = {make_fixed("llama", fixed_llama(), DType::F32),
                                                   make_fixed("qwen3moe", fixed_qwen3_moe(), DType::BF16),
                                                   make_fixed("kimi", fixed_kimi(), DType::F32)};
  return all;
}

}  // namespace lmlab::fuzz
