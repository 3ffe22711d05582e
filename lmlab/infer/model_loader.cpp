// Model folder resolution and loading.
#include "lmlab/infer/model_loader.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "lmlab/io/safetensors.h"
#include "lmlab/models/gguf_llama.h"

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

LoadedModel load_model(const std::string& path) {
  LoadedModel lm;
  if (path.size() > 5 && path.ends_with(".gguf")) {  // a llama.cpp GGUF file
    GgufLlama g = load_gguf_llama(path);
    lm.folder = path;
    lm.model = std::move(g.model);
    lm.tokenizer = std::move(g.tokenizer);
    return lm;
  }
  lm.folder = resolve_model_folder(path);
  TransformerConfig cfg = TransformerConfig::from_file(lm.folder + "/config.json");
  lm.model = std::make_unique<Transformer>(cfg);
  std::string wpath = lm.folder + "/model.safetensors";
  LMLAB_CHECK(fs::exists(wpath), IoError, "[model] '", lm.folder, "' has no model.safetensors");
  SafetensorsFile f = SafetensorsFile::open(wpath);
  std::map<std::string, Tensor> sd;
  for (const auto& n : f.names()) sd[n] = f.get(n);
  if (cfg.tie_word_embeddings) sd.erase("lm_head.weight");  // some HF exports keep the tied copy
  try {
    lm.model->load_state_dict(sd, true);
  } catch (const Error& e) {
    throw FormatError(str_cat("[model] '", wpath, "': ", e.what()));
  }
  lm.model->train(false);
  std::string tpath = lm.folder + "/tokenizer.json";
  if (fs::exists(tpath)) {
    lm.tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_file(tpath));
    if (!lm.tokenizer->eos_id() && cfg.eos_token_id >= 0) lm.tokenizer->set_eos_id(int32_t(cfg.eos_token_id));
  }
  return lm;
}

}  // namespace lmlab
