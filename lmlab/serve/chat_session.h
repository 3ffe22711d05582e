// A conversation with a model through its chat template: the history, the prompt rendered as
// transformers renders it, and the inference state kept between turns so that each turn feeds only
// the tokens the previous one did not (the rendered prefix the state already holds is reused).
// Used by `lmlab chat`; the server's requests render and stop the same way.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmlab/chat/chat_template.h"
#include "lmlab/infer/generate.h"
#include "lmlab/io/hf.h"

namespace lmlab::serve {

// The tokens that end an assistant turn: the tokenizer's EOS, generation_config.json's
// eos_token_id(s), the template's eos_token, and the end-of-turn markers of the common template
// families (<|im_end|>, <|eot_id|>, <|end|>, <end_of_turn>, <|endoftext|>, ...) when the vocabulary
// has them as single tokens.
std::vector<int64_t> chat_stop_ids(const Tokenizer& tok, const HfGenerationConfig& gen, const chat::ChatTemplate& t);

// A rendered prompt as token ids: special-token text parsed as the special tokens, and no BOS
// added (templates write bos_token themselves, and transformers tokenizes the render without adding
// special tokens).
std::vector<int64_t> encode_prompt(const Tokenizer& tok, const std::string& text);

class ChatSession {
 public:
  ChatSession(const Transformer& model, const Tokenizer& tok, chat::ChatTemplate tmpl, std::vector<int64_t> stop_ids);

  // Sets (or, with empty text, removes) the system message, which stays first.
  void set_system(const std::string& text);
  // Forgets the conversation except the system message.
  void reset();
  const nlohmann::ordered_json& messages() const { return messages_; }
  const chat::ChatTemplate& chat_template() const { return tmpl_; }

  // Adds the user's message, generates the assistant's reply (streamed through on_piece) and adds
  // it. A reply cut short (on_token returned false, the token budget) is kept as it stands. If the
  // prompt does not fit the context, the user's message is taken back and ValueError says so.
  TextGeneration reply(const std::string& user_text, GenerateOptions opt,
                       const std::function<void(const std::string&)>& on_piece = {});
  // Tokens of the last prompt that were already in the state (not fed again).
  int64_t reused_tokens() const { return reused_; }

 private:
  const Transformer& model_;
  const Tokenizer& tok_;
  chat::ChatTemplate tmpl_;
  jinja::Template compiled_;
  std::vector<int64_t> stop_ids_;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
  InferState state_;
  int64_t reused_ = 0;
};

}  // namespace lmlab::serve
