// `lmlab quantize`: re-encodes the weight matrices of a .gguf file in another ggml type (Q8_0, Q4_0,
// Q4_K, Q6_K, F16, BF16, F32), as llama.cpp's llama-quantize does. Which tensors change:
//   - every tensor with two or more dims whose name ends in ".weight", except the MoE router
//     ("*.ffn_gate_inp.weight", kept in its source type: routing is sensitive and tiny);
//   - "output.weight" (the LM head; token_embd.weight when tied) gets `output_type`, by default Q6_K
//     for the 4-bit types and the main type otherwise (llama.cpp's choice: the head dominates the
//     error budget);
//   - a matrix whose rows are not a multiple of the type's block falls back to Q8_0 (rows a
//     multiple of 32) or keeps its type, and the report names it.
// 1-D tensors (norms, biases) and all metadata are copied; general.file_type is set to llama.cpp's
// code for the main type. The output is written atomically.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "lmlab/core/quant.h"

namespace lmlab {

// "q8_0", "q4_0", "q4_k", "q6_k", "f16", "bf16", "f32" (case-insensitive) -> type; ValueError listing
// the choices otherwise.
GgmlType ggml_type_from_name(const std::string& name);

struct QuantizeOptions {
  GgmlType type = GgmlType::Q8_0;
  std::optional<GgmlType> output_type;  // LM head; default as described above
};

struct QuantizeReport {
  int64_t tensors = 0;                 // tensors in the file
  int64_t requantized = 0;             // tensors written in a new type
  size_t bytes_in = 0, bytes_out = 0;  // tensor data sizes
  std::vector<std::string> notes;      // fallbacks, one line each
};

QuantizeReport gguf_quantize(const std::string& in_path, const std::string& out_path, const QuantizeOptions& opt);

}  // namespace lmlab
