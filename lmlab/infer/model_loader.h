// Loads a model for inference from a folder: a training run (runs/<id>: its newest checkpoint), a
// checkpoint folder, a Hugging Face model folder (config.json, model.safetensors or shards with
// model.safetensors.index.json, tokenizer.json, tokenizer_config.json, generation_config.json), or a
// .gguf file.
// Errors name the folder and the file that is missing or wrong.
#pragma once
#include <memory>
#include <string>

#include "lmlab/io/hf.h"
#include "lmlab/models/transformer.h"
#include "lmlab/tokenizer/tokenizer.h"

namespace lmlab {

struct LoadedModel {
  std::string folder;  // the resolved checkpoint / model folder
  std::unique_ptr<Transformer> model;
  std::unique_ptr<Tokenizer> tokenizer;
  int64_t half_precision_matrices = 0;  // HF bf16/f16 matrices kept in their stored type
  // From generation_config.json / tokenizer_config.json when the folder has them (unset otherwise).
  HfGenerationConfig generation;
  HfTokenizerConfig tokenizer_config;
};

// The folder holding config.json for `path` (resolving runs/<id> and .../checkpoints).
std::string resolve_model_folder(const std::string& path);
struct ModelLoadOptions {
  // Inference models keep bf16 / f16 (HF) and quantized (GGUF) matrices in their stored type and run
  // them through ops/qmatmul; false widens everything to f32 (a trainable model).
  bool keep_stored_precision = true;
};
LoadedModel load_model(const std::string& path, const ModelLoadOptions& opt = {});
// The model of an opened HF-layout folder (load_model's path for folders): config.json is checked
// against the weights' tensor headers (models/model_check.h) before the model is built, so a size
// the weights do not hold is a ConfigError naming the field, not an allocation.
LoadedModel load_hf_model(const HfFolder& hf, const ModelLoadOptions& opt = {});

}  // namespace lmlab
