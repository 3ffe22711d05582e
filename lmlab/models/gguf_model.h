// GGUF <-> Hugging Face model folders for the architectures llama.cpp calls llama, qwen2, qwen3 and
// qwen3moe (HF LlamaForCausalLM / MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM,
// Qwen3MoeForCausalLM), and loading a .gguf for inference with its weights kept in their stored
// type (Q8_0 / Q4_0 / Q4_K / Q6_K / F16 / BF16 matrices run through ops/qmatmul.h, zero-copy from
// the file mapping). One name table per architecture serves both directions (STYLE 2.4).
//
// Layout facts mirrored from llama.cpp's convert_hf_to_gguf.py and gguf-py: the llama architecture
// stores q_proj/k_proj rows permuted from HF's rotate_half pairing to GGML's interleaved pairs (the
// qwen architectures do not: llama.cpp runs them with NEOX rope); MoE experts are stacked into one
// 3-D tensor per projection (blk.N.ffn_{gate,up,down}_exps.weight, [experts, rows, cols]).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/io/gguf.h"
#include "lmlab/models/gguf_tokenizer.h"
#include "lmlab/models/transformer.h"
#include "lmlab/tokenizer/tokenizer.h"

namespace lmlab {

// One HF tensor and where it lives in a GGUF file.
struct GgufTensorSlot {
  std::string hf;        // "model.layers.0.self_attn.q_proj.weight"
  Shape shape;           // HF shape
  std::string gguf;      // "blk.0.attn_q.weight"
  int64_t expert = -1;   // >= 0: slice `expert` of a stacked [E, rows, cols] GGUF tensor
  int64_t permute = 0;   // > 0: rows are llama.cpp-permuted over this many heads
};

// The GGUF architecture name for a config ("llama", "qwen2", "qwen3", "qwen3moe"); FormatError naming
// the architecture when it has no GGUF mapping.
std::string gguf_arch_name(const TransformerConfig& cfg);
// Every tensor of a model with config `cfg` (lm_head left out when tied), in GGUF writing order.
std::vector<GgufTensorSlot> gguf_tensor_slots(const TransformerConfig& cfg);
// HF name <-> GGUF name for a given config (experts map to their stacked tensor); nullopt if unknown.
std::optional<std::string> hf_to_gguf_name(const TransformerConfig& cfg, const std::string& hf);

// llama.cpp's row permutation of q_proj/k_proj ([n_head * head_dim, in], any dtype): HF rows
// (h, s, j) -> GGUF rows (h, j, s), s in {0, 1}, j < head_dim/2. inverse=true undoes it.
Tensor gguf_permute_qk(const Tensor& w, int64_t n_head, bool inverse = false);
// The same on the rows of a (quantized) matrix: rows are independent in every ggml block type.
QMatrix gguf_permute_qk(const QMatrix& w, int64_t n_head, bool inverse = false);

// The model configuration a .gguf describes (FormatError naming the file and key when invalid).
TransformerConfig gguf_model_config(const GgufFile& f);
// Writes the architecture metadata of `cfg` ({arch}.context_length, ... as llama.cpp reads them).
void write_gguf_model_config(GgufWriter& w, const TransformerConfig& cfg, const std::string& name);

// Folder (config.json, model.safetensors or shards, optional tokenizer.json) -> .gguf. `type` converts
// the matrices (F32, F16, BF16); std::nullopt keeps the source dtype. 1-D tensors are written F32.
void hf_folder_to_gguf(const std::string& folder, const std::string& out_gguf,
                       std::optional<GgmlType> type = std::nullopt);
// .gguf -> folder with config.json, model.safetensors (dtype of token_embd when F32/F16/BF16, else f32:
// quantized matrices are dequantized) and tokenizer.json when the file has tokenizer metadata.
void gguf_to_hf_folder(const std::string& gguf, const std::string& out_folder);

struct GgufLoadOptions {
  // Matrices stored as F16/BF16/Q* stay in that type (qlinear); false dequantizes everything to f32
  // (a trainable model).
  bool keep_quantized = true;
};
struct GgufModel {
  std::unique_ptr<Transformer> model;
  std::unique_ptr<Tokenizer> tokenizer;  // null when the file has no tokenizer metadata
  int64_t quantized_matrices = 0;        // Linear layers running from their stored type
};
GgufModel load_gguf_model(const std::string& path, const GgufLoadOptions& opt = {});

}  // namespace lmlab
