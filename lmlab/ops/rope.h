// Rotary position embedding (Su et al. 2021, RoFormer), fused. x is [B, T, H, D]; the first
// `rotary_dim` channels of each head are rotated, the rest pass through (partial rotary).
// Pairing follows Hugging Face's rotate_half (channel i with i + rotary_dim/2) unless
// `interleaved` (pairs (2i, 2i+1), the GPT-J / GGML "normal" layout).
// Frequency scaling follows HF's rope_scaling types: linear (positions / factor), llama3
// (per-frequency interpolation), yarn (NTK-by-parts + attention factor applied to cos/sin).
// Angles pos * inv_freq are computed in double (HF uses f32 inv_freq), then cos/sin are rounded to x's
// dtype. yarn takes `factor` as given (some HF versions replace it by max_position_embeddings /
// original_max_position_embeddings when a config has the latter; loaders resolve that); DeepSeek's
// mscale / mscale_all_dim arrive folded into attention_factor (models/config.cpp).
#pragma once
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {

struct RopeScaling {
  enum class Type { None, Linear, Llama3, Yarn } type = Type::None;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
  // yarn
  double beta_fast = 32.0, beta_slow = 1.0;
  double attention_factor = 0.0;  // 0 = default 0.1 * ln(factor) + 1 (1 when factor <= 1)
  bool truncate = true;           // HF yarn "truncate": floor/ceil the ramp's ends to whole pair indices
  // Explicit per-pair divisors [rotary_dim / 2] of the inverse frequencies, applied after `type`'s
  // scaling (llama.cpp's rope_freqs tensor, used where a GGUF's factors match no HF type). Empty:
  // none. Every entry finite and positive.
  std::vector<double> freq_factors;
};

struct RopeConfig {
  int64_t head_dim = 64;
  int64_t rotary_dim = 0;  // 0 = head_dim; must be even and <= head_dim
  double theta = 10000.0;
  bool interleaved = false;
  RopeScaling scaling;
};

// Inverse frequencies [rotary_dim / 2] (f64) after scaling, and the cos/sin multiplier (yarn).
Tensor rope_inv_freq(const RopeConfig& cfg);
// The scaling as per-pair divisors of the unscaled inverse frequencies [rotary_dim / 2]:
// theta^(-2i/rot) / inv_freq_i (llama.cpp's rope_freqs form of llama3 scaling).
std::vector<double> rope_freq_factors(const RopeConfig& cfg);
double rope_attention_factor(const RopeConfig& cfg);

// Positions pos_offset .. pos_offset + T - 1 for every batch row.
Tensor rope(const Tensor& x, const RopeConfig& cfg, int64_t pos_offset = 0);
// Explicit positions: [T] or [B, T] (i64/i32).
Tensor rope(const Tensor& x, const RopeConfig& cfg, const Tensor& positions);

}  // namespace lmlab
