// Model folder resolution and loading.
#include "lmlab/infer/model_loader.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "lmlab/io/hf.h"
#include "lmlab/models/gguf_model.h"
#include "lmlab/models/model_check.h"
#include "lmlab/models/stored_weights.h"

namespace fs = std::filesystem;

namespace lmlab {

std::string resolve_model_folder(const std::string& path) {
  LMLAB_CHECK(fs::exists(path), IoError, "[model] '", path, "' does not exist");
  if (fs::exists(fs::path(path) / "config.json")) return path;
  fs::path ck = fs::exists(fs::path(path) / "checkpoints") ? fs::path(path) / "checkpoints" : fs::path(path);
  std::vector<std::string> steps;
  for (auto& e : fs::directory_iterator(ck)) {
    std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0 && n.find(".partial") == std::string::npos &&
        fs::exists(e.path() / "config.json"))
      steps.push_back(e.path().string());
  }
  LMLAB_CHECK(!steps.empty(), IoError, "[model] '", path,
              "' is neither a model folder (no config.json) nor a run with checkpoints");
  std::sort(steps.begin(), steps.end());
  return steps.back();
}

LoadedModel load_model(const std::string& path, const ModelLoadOptions& opt) {
  LoadedModel lm;
  if (path.size() > 5 && path.ends_with(".gguf")) {  // a llama.cpp GGUF file
    GgufLoadOptions go;
    go.keep_quantized = opt.keep_stored_precision;
    GgufModel g = load_gguf_model(path, go);
    lm.folder = path;
    lm.model = std::move(g.model);
    lm.tokenizer = std::move(g.tokenizer);
    return lm;
  }
  lm.folder = resolve_model_folder(path);
  LoadedModel hf = load_hf_model(HfFolder::open(lm.folder), opt);  // config.json, weights, tokenizer files
  hf.folder = lm.folder;
  return hf;
}

LoadedModel load_hf_model(const HfFolder& hf, const ModelLoadOptions& opt) {
  LoadedModel lm;
  lm.folder = hf.folder;
  const std::string& wpath = hf.weights.source();
  // Checked against the tensor headers before anything is allocated.
  TransformerConfig cfg = config_for_weights(hf.config_json, hf.config_path, tensor_shapes(hf.weights), wpath);
  {
    SkipInit skip;  // every value is loaded below
    lm.model = std::make_unique<Transformer>(cfg);
  }
  std::map<std::string, Tensor> sd;
  for (const auto& n : hf.weights.names()) sd[n] = hf.weights.get(n);  // zero-copy views of the mapping
  if (cfg.tie_word_embeddings) sd.erase("lm_head.weight");  // some HF exports keep the tied copy
  try {
    if (opt.keep_stored_precision) lm.half_precision_matrices = attach_half_precision_weights(*lm.model, sd);
    lm.model->load_state_dict(sd, true);
  } catch (const Error& e) {
    throw FormatError(str_cat("[model] '", wpath, "': ", e.what()));
  }
  fuse_quantized_weights(*lm.model);
  lm.model->train(false);
  if (hf.tokenizer_json) {
    lm.tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_file(*hf.tokenizer_json));
    if (!lm.tokenizer->eos_id() && cfg.eos_token_id >= 0 && cfg.eos_token_id < lm.tokenizer->vocab_size())
      lm.tokenizer->set_eos_id(int32_t(cfg.eos_token_id));
  }
  lm.generation = hf.generation;
  lm.tokenizer_config = hf.tokenizer_config;
  return lm;
}

}  // namespace lmlab
