// A Hugging Face model folder (transformers' save_pretrained layout): config.json, the weights
// (model.safetensors, or shards + model.safetensors.index.json), tokenizer.json, and the optional
// tokenizer_config.json and generation_config.json. HfFolder gathers what is there; absent optional
// files leave their fields unset, malformed ones are FormatErrors naming the file and the field.
// config.json stays text: its meaning belongs to the model layer.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lmlab/io/safetensors.h"

namespace lmlab {

// tokenizer_config.json. Special tokens may be written as a string or as an AddedToken object
// {"content": "<s>", ...}; both give the content here. null means unset.
struct HfTokenizerConfig {
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;
  std::optional<bool> add_bos_token, add_eos_token;
  // The default chat template: a string, or the entry named "default" of a [{name, template}] list,
  // or (when tokenizer_config.json has none) the text of chat_template.jinja / chat_template.json.
  std::optional<std::string> chat_template;
  std::map<std::string, std::string> chat_templates;  // every named template of the list form

  static HfTokenizerConfig parse(const std::string& text, const std::string& source = "tokenizer_config.json");
};

// generation_config.json: the sampling defaults the model was published with. eos_token_id may be
// an integer or a list (Llama 3: end of text and end of turn). null means unset.
struct HfGenerationConfig {
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<bool> do_sample;
  std::optional<double> temperature, top_p, repetition_penalty;
  std::optional<int64_t> top_k, max_new_tokens, max_length;

  static HfGenerationConfig parse(const std::string& text, const std::string& source = "generation_config.json");
};

struct HfFolder {
  std::string folder;
  std::string config_path, config_json;  // config.json (required)
  SafetensorsShards weights;             // sharded or single, see SafetensorsShards::open_folder
  std::optional<std::string> tokenizer_json;  // path of tokenizer.json when present
  HfTokenizerConfig tokenizer_config;
  HfGenerationConfig generation;

  // Reads `folder`. IoError naming the folder when config.json or the weights are missing.
  static HfFolder open(const std::string& folder);
};

}  // namespace lmlab
