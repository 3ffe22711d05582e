// Shared by the serve tests: a tiny tokenizer trained on two sentences (with ChatML's special
// tokens), a tiny random model over it, and the ChatML template.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lmlab/chat/chat_template.h"
#include "lmlab/infer/model_loader.h"

namespace lmlab::serve_test {

inline Tokenizer tiny_tokenizer() {
  std::vector<std::string> corpus = {"the cat sat on the mat. the dog sat on the log.", "user assistant system hello"};
  TrainOptions to;
  to.vocab_size = 300;
  to.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  return Tokenizer::train(corpus, to);
}

inline TransformerConfig tiny_config(int64_t vocab, int64_t hidden = 32, int64_t layers = 2, int64_t ctx = 160,
                                     const std::string& pattern = "") {
  TransformerConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = hidden * 2;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = ctx;
  if (!pattern.empty()) c.layer_pattern = pattern;
  return c;
}

inline chat::ChatTemplate chatml() {
  chat::ChatTemplate t;
  t.source = chat::chatml_template();
  t.origin = "chatml";
  return t;
}

}  // namespace lmlab::serve_test
