// ChatSession: history, template rendering, stop tokens and prefix reuse between turns.
#include "lmlab/serve/chat_session.h"

#include <algorithm>

namespace lmlab::serve {

std::vector<int64_t> chat_stop_ids(const Tokenizer& tok, const HfGenerationConfig& gen, const chat::ChatTemplate& t) {
  std::vector<int64_t> ids;
  auto add = [&](std::optional<int32_t> id) {
    if (id && std::find(ids.begin(), ids.end(), int64_t(*id)) == ids.end()) ids.push_back(*id);
  };
  add(tok.eos_id());
  for (int64_t id : gen.eos_token_ids)
    if (id >= 0 && id <= INT32_MAX) add(int32_t(id));
  if (!t.eos_token.empty()) add(tok.token_to_id(t.eos_token));
  for (const char* marker : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                             "<|end_of_text|>", "</s>", "<|return|>", "<｜end▁of▁sentence｜>"})
    add(tok.token_to_id(marker));
  return ids;
}

std::vector<int64_t> encode_prompt(const Tokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids32 = tok.encode(text, /*allow_special=*/true);
  return std::vector<int64_t>(ids32.begin(), ids32.end());
}

ChatSession::ChatSession(const Transformer& model, const Tokenizer& tok, chat::ChatTemplate tmpl,
                         std::vector<int64_t> stop_ids)
    : model_(model),
      tok_(tok),
      tmpl_(std::move(tmpl)),
      compiled_(tmpl_.source, tmpl_.origin.empty() ? "chat_template" : tmpl_.origin),
      stop_ids_(std::move(stop_ids)),
      state_(model) {}

void ChatSession::set_system(const std::string& text) {
  bool has = !messages_.empty() && messages_[0].value("role", "") == "system";
  if (text.empty()) {
    if (has) messages_.erase(messages_.begin());
    return;
  }
  nlohmann::ordered_json m = {{"role", "system"}, {"content", text}};
  if (has) messages_[0] = m;
  else messages_.insert(messages_.begin(), m);
}

void ChatSession::reset() {
  nlohmann::ordered_json keep = nlohmann::ordered_json::array();
  if (!messages_.empty() && messages_[0].value("role", "") == "system") keep.push_back(messages_[0]);
  messages_ = keep;
  state_ = InferState(model_);
}

TextGeneration ChatSession::reply(const std::string& user_text, GenerateOptions opt,
                                  const std::function<void(const std::string&)>& on_piece) {
  messages_.push_back({{"role", "user"}, {"content", user_text}});
  try {
    chat::ChatRequest req;
    req.messages = messages_;
    req.add_generation_prompt = true;
    std::string prompt = chat::render_chat(compiled_, req, tmpl_.bos_token, tmpl_.eos_token);
    std::vector<int64_t> ids = encode_prompt(tok_, prompt);
    LMLAB_CHECK(!ids.empty(), ValueError, "[chat] the rendered prompt encodes to no tokens");
    // Reuse the longest prefix the state holds (at least one token is fed, for the logits). Layers
    // with a recurrent state cannot rewind: then the state starts over.
    size_t p = 0;
    while (p < state_.tokens.size() && p + 1 < ids.size() && state_.tokens[p] == ids[p]) ++p;
    if (int64_t(p) < state_.length()) {
      try {
        state_.truncate(int64_t(p));
      } catch (const ValueError&) {
        state_ = InferState(model_);
        p = 0;
      }
    }
    reused_ = int64_t(p);
    opt.stop_ids.insert(opt.stop_ids.end(), stop_ids_.begin(), stop_ids_.end());
    std::vector<int64_t> feed(ids.begin() + long(p), ids.end());
    TextGeneration r = generate_text(model_, tok_, state_, feed, std::move(opt), on_piece);
    messages_.push_back({{"role", "assistant"}, {"content", r.text}});
    return r;
  } catch (...) {
    messages_.erase(messages_.end() - 1);  // the user's message is taken back
    throw;
  }
}

}  // namespace lmlab::serve
