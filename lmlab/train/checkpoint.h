// Checkpoints in Hugging Face layout: a folder with config.json, model.safetensors (HF tensor
// names), tokenizer.json, plus lmlab.json (trainer state: step, data position, RNG, train config)
// and optimizer.safetensors. A checkpoint is written into "<name>.partial" and renamed into place
// after every file was fsynced, so a folder without ".partial" is always complete; keep-last-K
// removes older ones.
#pragma once
#include <string>
#include <vector>

#include "lmlab/core/file.h"  // read_text_file
#include "lmlab/models/transformer.h"
#include "lmlab/train/optim.h"

namespace lmlab {

struct CheckpointData {
  const Transformer* model = nullptr;
  const Optimizer* optimizer = nullptr;  // optional
  std::string tokenizer_json;            // optional
  std::string lmlab_json;                // trainer state (JSON text)
};

// Writes `dir`/step-XXXXXXXX atomically and returns its path; removes all but the newest `keep_last`.
std::string save_checkpoint(const std::string& dir, int64_t step, const CheckpointData& data, int keep_last = 3);
// The newest complete checkpoint folder in `dir`, or "" when there is none (".partial" folders,
// left by a killed writer, are removed).
std::string latest_checkpoint(const std::string& dir);
// Loads model weights (strict) from a checkpoint or HF folder's model.safetensors. FormatError /
// ShapeError name the file and tensor.
void load_model_weights(Transformer& model, const std::string& folder);

}  // namespace lmlab
