// Generation loops.
#include "lmlab/infer/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "lmlab/core/node.h"

namespace lmlab {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
Tensor ids_tensor(const std::vector<int64_t>& ids) {
  return Tensor::from_vector(ids, {1, int64_t(ids.size())});
}
// Logits of the last position of row b: [V] as float.
std::vector<float> last_logits(const Tensor& logits, int64_t b) {
  Tensor row = logits.select(0, b).select(0, logits.size(1) - 1);
  return row.contiguous().to_vector<float>();
}
// Earliest occurrence of any stop string in text[from..], or npos. Searching from just before the
// newly appended piece finds a stop string that straddles two tokens.
size_t find_stop(const std::string& text, const std::vector<std::string>& stops, size_t from = 0) {
  size_t best = std::string::npos;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    size_t start = from >= s.size() - 1 ? from - (s.size() - 1) : 0;
    size_t p = text.find(s, start);
    if (p != std::string::npos && (best == std::string::npos || p < best)) best = p;
  }
  return best;
}
}  // namespace

Decoder::Decoder(const Transformer& model, InferState& state, SamplerConfig sampler)
    : model_(model), state_(state), sampler_(std::move(sampler)), gen_(sampler_.seed) {}

void Decoder::feed(const std::vector<int64_t>& ids) {
  NoGrad ng;
  if (!ids.empty()) {
    Tensor l = model_.forward(ids_tensor(ids), &state_.cache);  // [1, T, V]
    logits_ = last_logits(l, 0);
    state_.tokens.insert(state_.tokens.end(), ids.begin(), ids.end());
    return;
  }
  LMLAB_CHECK(state_.length() > 0, ValueError, "[generate] nothing to feed: empty tokens and empty state");
  int64_t last = state_.tokens.back();
  state_.truncate(state_.length() - 1);
  Tensor l = model_.forward(ids_tensor({last}), &state_.cache);
  logits_ = last_logits(l, 0);
  state_.tokens.push_back(last);
}

void Decoder::feed_rows(const std::vector<Decoder*>& decs, const std::vector<int64_t>& ids) {
  LMLAB_CHECK(decs.size() == ids.size(), ValueError, "[generate] ", decs.size(), " decoders for ", ids.size(), " tokens");
  if (decs.empty()) return;
  NoGrad ng;
  const Transformer& model = decs[0]->model_;
  std::vector<CacheSet*> rows;
  for (Decoder* d : decs) {
    LMLAB_CHECK(&d->model_ == &model, ValueError, "[generate] feed_rows over decoders of different models");
    rows.push_back(&d->state_.cache);
  }
  Tensor l = model.forward_rows(Tensor::from_vector(ids, {int64_t(ids.size()), 1}), rows);  // [B, 1, V]
  for (size_t i = 0; i < decs.size(); ++i) {
    decs[i]->logits_ = last_logits(l, int64_t(i));
    decs[i]->state_.tokens.push_back(ids[i]);
  }
}

int64_t Decoder::sample() {
  LMLAB_CHECK(!logits_.empty(), ValueError, "[generate] sample before any token was fed");
  return sample_token(logits_.data(), int64_t(logits_.size()), state_.tokens, sampler_, gen_);
}

int64_t Decoder::sample_allowed(const std::vector<uint8_t>& allowed) {
  LMLAB_CHECK(!logits_.empty(), ValueError, "[generate] sample before any token was fed");
  LMLAB_CHECK(allowed.size() == logits_.size(), ValueError, "[generate] the allowed-token mask has ", allowed.size(),
              " entries for ", logits_.size(), " logits");
  std::vector<float> masked = logits_;
  bool any = false;
  for (size_t i = 0; i < masked.size(); ++i) {
    if (!allowed[i]) masked[i] = -std::numeric_limits<float>::infinity();
    else any = true;
  }
  LMLAB_CHECK(any, ValueError, "[generate] the constraint allows no token");
  return sample_token(masked.data(), int64_t(masked.size()), state_.tokens, sampler_, gen_);
}

std::vector<int64_t> generate(const Transformer& model, InferState& state, const std::vector<int64_t>& prompt,
                              const GenerateOptions& opt, GenerateStats* stats, const Tokenizer* tok) {
  opt.sampler.validate();
  NoGrad ng;
  int64_t ctx = model.cfg.max_position_embeddings;
  int64_t start = state.length();
  LMLAB_CHECK(!prompt.empty() || start > 0, ValueError, "[generate] empty prompt and empty state");
  LMLAB_CHECK(start + int64_t(prompt.size()) <= ctx, ValueError, "[generate] prompt of ", prompt.size(),
              " tokens (after ", start, " in the state) exceeds the model's context of ", ctx, " tokens");
  GenerateStats st;
  st.prompt_tokens = int64_t(prompt.size());
  double t0 = now_s();
  Decoder dec(model, state, opt.sampler);
  dec.feed(prompt);  // (an empty prompt re-feeds the state's last token)
  double t1 = now_s();
  st.prefill_s = t1 - t0;
  std::vector<int64_t> out;
  std::string text;
  st.stop_reason = "length";
  while (int64_t(out.size()) < opt.max_new_tokens) {
    int64_t next = dec.sample();
    out.push_back(next);
    if ((opt.eos_id >= 0 && next == opt.eos_id) ||
        std::find(opt.stop_ids.begin(), opt.stop_ids.end(), next) != opt.stop_ids.end()) {
      st.stop_reason = "eos";
      break;
    }
    if (opt.on_token && !opt.on_token(next)) {
      st.stop_reason = "callback";
      break;
    }
    if (tok && !opt.stop.empty()) {
      size_t before = text.size();
      text += tok->decode(std::vector<int32_t>{int32_t(next)});
      if (find_stop(text, opt.stop, before) != std::string::npos) {
        st.stop_reason = "stop";
        break;
      }
    }
    if (int64_t(out.size()) >= opt.max_new_tokens) break;
    if (state.length() + 1 > ctx) {
      st.stop_reason = "context";
      break;
    }
    dec.feed({next});
  }
  st.new_tokens = int64_t(out.size());
  st.decode_s = now_s() - t1;
  if (stats) *stats = st;
  return out;
}

TextGeneration generate_text(const Transformer& model, const Tokenizer& tok, const std::string& prompt,
                             GenerateOptions opt, const std::function<void(const std::string&)>& on_piece) {
  std::vector<int32_t> ids32 = tok.encode(prompt);
  std::vector<int64_t> ids(ids32.begin(), ids32.end());
  if (ids.empty() && tok.bos_id()) ids.push_back(*tok.bos_id());
  LMLAB_CHECK(!ids.empty(), ValueError, "[generate] the prompt encodes to no tokens and the tokenizer has no BOS");
  InferState state(model);
  return generate_text(model, tok, state, ids, std::move(opt), on_piece);
}

TextGeneration generate_text(const Transformer& model, const Tokenizer& tok, InferState& state,
                             const std::vector<int64_t>& ids, GenerateOptions opt,
                             const std::function<void(const std::string&)>& on_piece) {
  if (opt.eos_id < 0 && tok.eos_id()) opt.eos_id = *tok.eos_id();
  TextStreamer streamer(tok, opt.stop);
  auto user_cb = opt.on_token;
  opt.on_token = [&](int64_t t) {
    std::string piece = streamer.push(t);
    if (on_piece && !piece.empty()) on_piece(piece);
    return user_cb ? user_cb(t) : true;
  };
  TextGeneration r;
  r.tokens = generate(model, state, ids, opt, &r.stats, &tok);
  std::string rest;
  std::vector<int32_t> out32(r.tokens.begin(), r.tokens.end());
  r.text = tok.decode(out32, true);
  if (r.stats.stop_reason == "stop") {
    size_t p = find_stop(r.text, opt.stop);
    if (p != std::string::npos) r.text.resize(p);
  }
  streamer.finish(&rest);  // what was held back (a stop string's possible start, a partial character)
  if (on_piece && !rest.empty() && r.text.size() >= rest.size() &&
      r.text.compare(r.text.size() - rest.size(), rest.size(), rest) == 0)
    on_piece(rest);
  return r;
}

TextStreamer::TextStreamer(const Tokenizer& tok, std::vector<std::string> stop) : tok_(tok), stop_(std::move(stop)) {
  for (const auto& s : stop_) hold_ = std::max(hold_, s.empty() ? 0 : s.size() - 1);
}

std::string TextStreamer::push(int64_t id) {
  ids_.push_back(int32_t(id));
  std::string all = tok_.decode(ids_, true);
  if (!stopped_ && !stop_.empty() && find_stop(all, stop_) != std::string::npos) stopped_ = true;
  size_t end = all.size();
  // hold back an incomplete trailing UTF-8 sequence
  size_t i = end;
  int back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(all[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++back;
  }
  if (i > 0) {
    unsigned char lead = static_cast<unsigned char>(all[i - 1]);
    int need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
    if (need > back) end = i - 1;
  }
  end = end > hold_ ? end - hold_ : 0;
  if (stopped_) end = std::min(end, find_stop(all, stop_));
  if (end > emitted_.size() && all.compare(0, emitted_.size(), emitted_) == 0) {
    std::string piece = all.substr(emitted_.size(), end - emitted_.size());
    emitted_ = all.substr(0, end);
    return piece;
  }
  return {};
}

std::string TextStreamer::finish(std::string* rest) const {
  std::string all = tok_.decode(ids_, true);
  size_t p = stop_.empty() ? std::string::npos : find_stop(all, stop_);
  if (p != std::string::npos) all.resize(p);
  if (rest) *rest = (all.size() > emitted_.size() && all.compare(0, emitted_.size(), emitted_) == 0)
                        ? all.substr(emitted_.size())
                        : std::string();
  return all;
}

std::vector<std::vector<int64_t>> generate_batch(const Transformer& model,
                                                 const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& opt) {
  opt.sampler.validate();
  NoGrad ng;
  int64_t B = int64_t(prompts.size());
  LMLAB_CHECK(B > 0, ValueError, "[generate_batch] no prompts");
  int64_t T = 0;
  for (auto& p : prompts) {
    LMLAB_CHECK(!p.empty(), ValueError, "[generate_batch] empty prompt");
    T = std::max<int64_t>(T, int64_t(p.size()));
  }
  int64_t ctx = model.cfg.max_position_embeddings;
  LMLAB_CHECK(T + opt.max_new_tokens <= ctx, ValueError, "[generate_batch] longest prompt (", T, ") plus ",
              opt.max_new_tokens, " new tokens exceeds the context of ", ctx);
  std::vector<int64_t> pad(static_cast<size_t>(B));
  std::vector<int64_t> ids(static_cast<size_t>(B * T), 0), pos(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    pad[size_t(b)] = T - int64_t(prompts[size_t(b)].size());
    for (int64_t t = 0; t < T; ++t) {
      int64_t k = t - pad[size_t(b)];
      ids[size_t(b * T + t)] = k >= 0 ? prompts[size_t(b)][size_t(k)] : 0;
      pos[size_t(b * T + t)] = std::max<int64_t>(k, 0);
    }
  }
  // Additive key mask [B, 1, Tq, S]: padded key positions are -inf for every query.
  auto key_mask = [&](int64_t Tq, int64_t S) {
    std::vector<float> m(static_cast<size_t>(B * Tq * S), 0.0f);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t q = 0; q < Tq; ++q)
        for (int64_t s = 0; s < pad[size_t(b)] && s < S; ++s) m[size_t((b * Tq + q) * S + s)] = -INFINITY;
    return Tensor::from_vector(m, {B, 1, Tq, S});
  };
  CacheSet cache = model.new_cache();
  Tensor logits = model.forward(Tensor::from_vector(ids, {B, T}), &cache, Tensor::from_vector(pos, {B, T}),
                                key_mask(T, T));
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(B));
  std::vector<std::vector<int64_t>> hist(prompts.begin(), prompts.end());
  std::vector<Generator> gens;
  for (int64_t b = 0; b < B; ++b) gens.emplace_back(opt.sampler.seed + uint64_t(b));
  std::vector<bool> done(static_cast<size_t>(B), false);
  for (int64_t step = 0; step < opt.max_new_tokens; ++step) {
    std::vector<int64_t> next(static_cast<size_t>(B), 0), npos(static_cast<size_t>(B));
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      npos[size_t(b)] = int64_t(prompts[size_t(b)].size()) + step;
      if (done[size_t(b)]) continue;
      auto l = last_logits(logits, b);
      int64_t t = sample_token(l.data(), int64_t(l.size()), hist[size_t(b)], opt.sampler, gens[size_t(b)]);
      next[size_t(b)] = t;
      out[size_t(b)].push_back(t);
      hist[size_t(b)].push_back(t);
      if ((opt.eos_id >= 0 && t == opt.eos_id) || int64_t(out[size_t(b)].size()) >= opt.max_new_tokens)
        done[size_t(b)] = true;
      all_done = all_done && done[size_t(b)];
    }
    if (all_done) break;
    int64_t S = cache.length() + 1;
    logits = model.forward(Tensor::from_vector(next, {B, 1}), &cache, Tensor::from_vector(npos, {B, 1}),
                           key_mask(1, S));
  }
  return out;
}

}  // namespace lmlab
