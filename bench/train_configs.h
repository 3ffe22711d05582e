// The model configurations the training and decoding benchmarks share with their PyTorch peer
// (bench/peer_train.py builds the same shapes): A = vocab 4096, ctx 256, d 256, 4 layers, 4 heads;
// B = d 512, 8 layers, 8 heads; SwiGLU width ~8/3 d rounded up to 64; untied LM head; batch 16.
#pragma once
#include <string>

#include "lmlab/models/transformer.h"

namespace lmlab::bench {

inline TransformerConfig train_config(const std::string& name) {
  TransformerConfig c;
  c.vocab_size = 4096;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = false;
  if (name == "A") {
    c.hidden_size = 256;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.intermediate_size = 704;
  } else {
    c.hidden_size = 512;
    c.num_hidden_layers = 8;
    c.num_attention_heads = 8;
    c.intermediate_size = 1408;
  }
  c.num_key_value_heads = c.num_attention_heads;
  return c;
}

// Training FLOPs per token: 6 x (matmul parameters: attention + MLP + LM head) plus attention
// scores/values 6 x L x T x d (causal: half of PaLM's 12 L T d).
inline double train_flops_per_token(const TransformerConfig& c, int64_t T) {
  double d = double(c.hidden_size), L = double(c.num_hidden_layers);
  double n = L * (4 * d * d + 3 * d * double(c.intermediate_size)) + d * double(c.vocab_size);
  return 6 * n + 6 * L * double(T) * d;
}

}  // namespace lmlab::bench
