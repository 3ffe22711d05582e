// GGUF <-> Hugging Face Llama folders (llama.cpp convert_hf_to_gguf.py's LlamaModel layout and
// gguf-py's tensor names / metadata keys) and loading a llama-arch .gguf for inference. q_proj and
// k_proj rows are permuted from HF's rotate_half RoPE layout to GGML's interleaved-pair layout on
// write and permuted back on read, so a round trip is bit-exact.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lmlab/io/gguf.h"
#include "lmlab/models/transformer.h"
#include "lmlab/tokenizer/tokenizer.h"

namespace lmlab {

// The one name table for arch "llama": HF name <-> GGUF name ("{i}" stands for the layer index).
struct GgufNamePair {
  const char* hf;
  const char* gguf;
};
const std::vector<GgufNamePair>& llama_gguf_name_table();
// Maps a name either way; std::nullopt when the name is not in the table.
std::optional<std::string> llama_hf_to_gguf_name(const std::string& hf);
std::optional<std::string> llama_gguf_to_hf_name(const std::string& gguf);
// Every HF parameter of a Llama model with config `cfg` and its shape (lm_head left out when tied).
std::vector<std::pair<std::string, Shape>> llama_hf_tensor_shapes(const TransformerConfig& cfg);

// llama.cpp's row permutation of q_proj/k_proj ([n_head * head_dim, in], contiguous or not, any
// dtype): HF rows (h, s, j) -> GGUF rows (h, j, s), s in {0, 1}, j < head_dim/2. inverse=true undoes it.
Tensor llama_permute_qk(const Tensor& w, int64_t n_head, bool inverse = false);

// Folder (config.json, model.safetensors, optional tokenizer.json) -> .gguf. `type` converts the
// 2-D tensors (F32, F16, BF16); std::nullopt keeps the source dtype. 1-D norms are written F32.
void hf_folder_to_gguf(const std::string& folder, const std::string& out_gguf,
                       std::optional<GgmlType> type = std::nullopt);
// .gguf -> folder with config.json, model.safetensors (dtype of token_embd: F32/F16/BF16, f32 for
// quantized files) and tokenizer.json (when the file has tokenizer metadata).
void gguf_to_hf_folder(const std::string& gguf, const std::string& out_folder);

// The configuration, model (f32, eval mode) and tokenizer of a llama-arch .gguf.
TransformerConfig llama_config_from_gguf(const GgufFile& f);
// Null when the file has no tokenizer.ggml.tokens.
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& f);
struct GgufLlama {
  std::unique_ptr<Transformer> model;
  std::unique_ptr<Tokenizer> tokenizer;
};
GgufLlama load_gguf_llama(const std::string& path);

}  // namespace lmlab
