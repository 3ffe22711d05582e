// Autoregressive generation over an InferState: prefill the prompt in one forward, then decode
// token by token with the cache; samplers from sampler.h; stop on EOS, stop strings, a callback
// (streaming) or the token budget. Batched generation left-pads prompts of different lengths and
// masks the padding, so one forward serves every row in prefill and in each decode step.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lmlab/infer/sampler.h"
#include "lmlab/infer/state.h"
#include "lmlab/tokenizer/tokenizer.h"

namespace lmlab {

struct GenerateStats {
  int64_t prompt_tokens = 0, new_tokens = 0;
  double prefill_s = 0, decode_s = 0;
  std::string stop_reason;  // "length", "eos", "stop", "callback", "context"
  double prefill_tok_s() const { return prefill_s > 0 ? double(prompt_tokens) / prefill_s : 0; }
  double decode_tok_s() const { return decode_s > 0 ? double(new_tokens) / decode_s : 0; }
};

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplerConfig sampler;
  std::vector<std::string> stop;     // stop strings (checked on the decoded text)
  int64_t eos_id = -1;               // stop token (-1 = none)
  // Streaming: called with each new token id; return false to stop.
  std::function<bool(int64_t)> on_token;
  std::vector<int64_t> stop_ids;     // more stop tokens (end of turn: <|im_end|>, <|eot_id|>, ...)
};

// One sequence decoded a step at a time over its state: feed tokens (the prompt, then each chosen
// token), sample from the last position's logits. generate() runs one to the end; the server keeps
// one per request and steps them together (feed_rows). Sampling draws from the Decoder's own generator, seeded
// with the sampler's seed, so a request gives the same tokens alone or beside others (up to float
// rounding when batched).
class Decoder {
 public:
  Decoder(const Transformer& model, InferState& state, SamplerConfig sampler);
  // Feeds tokens after what the state holds and keeps the last position's logits. An empty list
  // re-feeds the state's last token (a state whose logits were not kept, e.g. after a rollback).
  void feed(const std::vector<int64_t>& ids);
  // Continuous batching: feeds ids[i] to decs[i], all in one forward over the rows
  // (Transformer::forward_rows, each row on its own state); each keeps its row's logits, equal to
  // feed({ids[i]}) up to float rounding of the batched products. The decoders share one model.
  static void feed_rows(const std::vector<Decoder*>& decs, const std::vector<int64_t>& ids);
  // The next token from the kept logits (not fed: feed it to go on).
  int64_t sample();
  // The same among the tokens with allowed[id] != 0 only (constrained decoding); ValueError when
  // none is allowed.
  int64_t sample_allowed(const std::vector<uint8_t>& allowed);
  const std::vector<float>& logits() const { return logits_; }
  InferState& state() { return state_; }

 private:
  const Transformer& model_;
  InferState& state_;
  SamplerConfig sampler_;
  Generator gen_;
  std::vector<float> logits_;
};

// Feeds `prompt` (appended to whatever the state holds) and generates; returns the new tokens.
// The prompt plus new tokens must fit the model's context: a longer prompt is a ValueError naming
// both lengths, and generation stops with reason "context" at the limit.
std::vector<int64_t> generate(const Transformer& model, InferState& state, const std::vector<int64_t>& prompt,
                              const GenerateOptions& opt, GenerateStats* stats = nullptr,
                              const Tokenizer* tok = nullptr);

// Generated tokens as text shown while it grows: only whole UTF-8 characters, and never text that
// could still turn out to begin a stop string (so a stop string is never shown).
class TextStreamer {
 public:
  TextStreamer(const Tokenizer& tok, std::vector<std::string> stop);
  // Adds a generated token; returns the text that can be shown now (often empty).
  std::string push(int64_t id);
  // The text holds a stop string: the generation should end.
  bool stopped() const { return stopped_; }
  // Ends the text: the whole of it (cut before the first stop string) and, in *rest, what push
  // has not yet returned.
  std::string finish(std::string* rest = nullptr) const;

 private:
  const Tokenizer& tok_;
  std::vector<std::string> stop_;
  std::vector<int32_t> ids_;
  std::string emitted_;
  size_t hold_ = 0;
  bool stopped_ = false;
};

// Text in, text out (streaming pieces through on_piece if given).
struct TextGeneration {
  std::string text;
  std::vector<int64_t> tokens;
  GenerateStats stats;
};
TextGeneration generate_text(const Transformer& model, const Tokenizer& tok, const std::string& prompt,
                             GenerateOptions opt, const std::function<void(const std::string&)>& on_piece = {});

// The same over a caller's state (kept for the next call, e.g. a chat's next turn) and token ids;
// stop strings are cut from text and never streamed.
TextGeneration generate_text(const Transformer& model, const Tokenizer& tok, InferState& state,
                             const std::vector<int64_t>& ids, GenerateOptions opt,
                             const std::function<void(const std::string&)>& on_piece = {});

// Batched: one row per prompt (left-padded), greedy or sampled with per-row generators seeded
// seed + row. Returns each row's new tokens (each stops at eos or max_new_tokens).
std::vector<std::vector<int64_t>> generate_batch(const Transformer& model,
                                                 const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& opt);

}  // namespace lmlab
