// Checking a model configuration before anything is allocated: every size a config gives is bounded
// (check_config_limits), and a config that comes with weights must describe those weights: the layer
// count, the embedding and the per-layer shapes the tensor headers give, and no more values than
// the files hold. A config.json that says "num_hidden_layers": 2000000000 beside two layers of
// weights is a ConfigError naming the field, the value and what the weights hold, not a model that
// allocates until the kernel kills it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lmlab/io/safetensors.h"
#include "lmlab/models/transformer.h"

namespace lmlab {

// Stored tensors' shapes by name, as file headers give them (no tensor data is read).
using TensorShapes = std::map<std::string, Shape>;

// ConfigError when a size of `cfg` is above lmlab's limits (far above any published model, so that
// size products stay inside int64 and loops over layers stay short). TransformerConfig::validate
// runs it first.
void check_config_limits(const TransformerConfig& cfg);

// config.json text -> TransformerConfig without validate() (TransformerConfig::from_json is this
// followed by validate()); the type of every field is checked.
TransformerConfig parse_config_json(const std::string& text, const std::string& source);

// The number of values (parameters and buffers) of Transformer(cfg)'s state dict, computed without
// building it; saturates at INT64_MAX. `cfg` must be valid.
int64_t model_state_numel(const TransformerConfig& cfg);

// The shapes of every tensor of opened safetensors files (from their headers).
TensorShapes tensor_shapes(const SafetensorsShards& weights);

// The most values a model loaded from weights holding `have` values may need: 2 x have + 2^20
// (room for a few missing tensors, which load_state_dict names; a config describing a larger model
// is refused before it is built). Saturating.
int64_t value_bound(int64_t have);

// Sum of the element counts of `shapes`, saturating at INT64_MAX.
int64_t total_numel(const TensorShapes& shapes);

// Layer indices N of the names "<prefix>N.<rest>" in `shapes` (HF "model.layers.", GGUF "blk."),
// sorted; names whose N is not a plain decimal number are skipped.
std::vector<int64_t> layer_indices(const TensorShapes& shapes, const std::string& prefix);

// ConfigError unless `layers` (a config's layer count, as read) is the number of layers in
// `indices` (found under `prefix`) and those are 0 .. layers - 1. `field` names the config key,
// `where` the config file, `weights` the weight file.
void check_layer_count(int64_t layers, const std::vector<int64_t>& indices, const std::string& prefix,
                       const std::string& field, const std::string& where, const std::string& weights);

// An HF-named checkpoint (config.json + safetensors, also lmlab's runs/<id> checkpoints): parses
// `config_text`, checks num_hidden_layers, vocab_size and hidden_size against the weights first (they
// bound everything else), validates, then check_config_against_weights. ConfigError naming the field,
// its value and what the weights hold.
TransformerConfig config_for_weights(const std::string& config_text, const std::string& config_source,
                                     const TensorShapes& weights, const std::string& weights_source);

// A valid `cfg` against HF-named weights: the layer count, the embedding and head, each layer's
// attention / MLA / linear-attention / MLP / MoE shapes where the tensor is present (a missing tensor
// is load_state_dict's error), and model_state_numel(cfg) <= value_bound(the values the weights hold).
void check_config_against_weights(const TransformerConfig& cfg, const TensorShapes& weights,
                                  const std::string& config_source, const std::string& weights_source);

}  // namespace lmlab
