// The OpenAI-compatible server: HTTP handlers (validation, responses, server-sent events) in front
// of one engine thread that steps the active jobs together (continuous batching).
#include "lmlab/serve/server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "lmlab/infer/generate.h"
#include "lmlab/serve/chat_session.h"
#include "lmlab/serve/json_constraint.h"
#include "lmlab/serve/tool_calls.h"
#include "lmlab/serve/web_page.h"

namespace lmlab::serve {

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A request's generation, shared by the HTTP thread that waits on it and the engine that runs it.
struct Job {
  std::vector<int64_t> prompt;
  SamplerConfig sampler;
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  int top_logprobs = -1;  // -1: no logprobs; else the alternatives per token (0-20)
  bool json_object = false;  // response_format json_object: only tokens that keep a JSON object
  Clock::time_point submitted = Clock::now(), deadline;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> pieces;  // text not yet taken by the HTTP thread
  std::vector<json> logprobs;      // per generated token, when asked for (OpenAI's content entries)
  size_t logprobs_taken = 0;       // entries already sent in stream chunks
  bool done = false;
  std::string finish_reason;  // "stop", "length", "cancelled", "timeout", "error"
  std::string error;
  std::string text;
  int64_t completion_tokens = 0;
  double ttft_s = -1;
  std::atomic<bool> cancel{false};

  void push_logprob(json entry) {
    std::lock_guard<std::mutex> g(mu);
    logprobs.push_back(std::move(entry));
  }
  void push(std::string piece) {
    std::lock_guard<std::mutex> g(mu);
    if (ttft_s < 0) ttft_s = seconds_since(submitted);
    pieces.push_back(std::move(piece));
    cv.notify_all();
  }
  void finish(std::string reason, std::string full_text, std::string err = {}) {
    std::lock_guard<std::mutex> g(mu);
    done = true;
    finish_reason = std::move(reason);
    text = std::move(full_text);
    error = std::move(err);
    cv.notify_all();
  }
};
using JobPtr = std::shared_ptr<Job>;

// Prometheus histogram with fixed buckets.
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t n = 0;
  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size(), 0) {}
  void observe(double v) {
    for (size_t i = 0; i < bounds.size(); ++i)
      if (v <= bounds[i]) ++counts[i];
    sum += v;
    ++n;
  }
  void write(std::string& out, const std::string& name, const std::string& help) const {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    for (size_t i = 0; i < bounds.size(); ++i) {
      char b[64];
      std::snprintf(b, sizeof b, "%g", bounds[i]);
      out += name + "_bucket{le=\"" + b + "\"} " + std::to_string(counts[i]) + "\n";
    }
    out += name + "_bucket{le=\"+Inf\"} " + std::to_string(n) + "\n";
    out += name + "_sum " + std::to_string(sum) + "\n" + name + "_count " + std::to_string(n) + "\n";
  }
};

// A 400-class answer with OpenAI's error body.
struct HttpError {
  int status;
  std::string message, type, param;
};

json error_body(const HttpError& e) {
  return json{{"error", {{"message", e.message}, {"type", e.type}, {"param", e.param.empty() ? json(nullptr) : json(e.param)}, {"code", nullptr}}}};
}

[[noreturn]] void bad_request(const std::string& msg, const std::string& param = {}) {
  throw HttpError{400, msg, "invalid_request_error", param};
}

// ---- request fields ----

double number_field(const json& b, const char* key, double def, double lo, double hi) {
  if (!b.contains(key) || b[key].is_null()) return def;
  const json& v = b[key];
  if (!v.is_number()) bad_request(std::string("'") + key + "' must be a number", key);
  double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad_request(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi), key);
  return x;
}

int64_t int_field(const json& b, const char* key, int64_t def, int64_t lo, int64_t hi) {
  if (!b.contains(key) || b[key].is_null()) return def;
  const json& v = b[key];
  if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()))
    bad_request(std::string("'") + key + "' must be an integer", key);
  if (v.is_number_float() && std::fabs(v.get<double>()) > 9e15) bad_request(std::string("'") + key + "' is out of range", key);
  int64_t x = v.is_number_unsigned() ? (v.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v.get<uint64_t>()))
                                     : v.is_number_integer() ? v.get<int64_t>() : int64_t(v.get<double>());
  if (x < lo || x > hi) bad_request(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi), key);
  return x;
}

bool bool_field(const json& b, const char* key, bool def) {
  if (!b.contains(key) || b[key].is_null()) return def;
  if (!b[key].is_boolean()) bad_request(std::string("'") + key + "' must be a boolean", key);
  return b[key].get<bool>();
}

std::vector<std::string> stop_field(const json& b) {
  std::vector<std::string> out;
  if (!b.contains("stop") || b["stop"].is_null()) return out;
  const json& v = b["stop"];
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > 4) bad_request("'stop' takes at most 4 strings", "stop");
    for (const auto& s : v) {
      if (!s.is_string()) bad_request("'stop' must be a string or an array of strings", "stop");
      out.push_back(s.get<std::string>());
    }
  } else {
    bad_request("'stop' must be a string or an array of strings", "stop");
  }
  out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
  return out;
}

// Sampling as OpenAI defines its parameters (temperature 1, top_p 1, no top-k or min-p unless given).
SamplerConfig sampler_of(const json& b) {
  SamplerConfig sc;
  sc.temperature = number_field(b, "temperature", 1.0, 0.0, 2.0);
  sc.top_p = number_field(b, "top_p", 1.0, 0.0, 1.0);
  if (sc.top_p == 0) sc.top_p = 1e-9;
  sc.top_k = int_field(b, "top_k", 0, 0, 1 << 30);
  sc.min_p = number_field(b, "min_p", 0.0, 0.0, 1.0);
  sc.repetition_penalty = number_field(b, "repetition_penalty", 1.0, 1e-6, 100.0);
  sc.frequency_penalty = number_field(b, "frequency_penalty", 0.0, -2.0, 2.0);
  sc.presence_penalty = number_field(b, "presence_penalty", 0.0, -2.0, 2.0);
  if (b.contains("logit_bias") && !b["logit_bias"].is_null()) {
    const json& lb = b["logit_bias"];
    if (!lb.is_object()) bad_request("'logit_bias' must be an object of token id -> bias", "logit_bias");
    for (const auto& [key, v] : lb.items()) {
      const bool digits = !key.empty() && key.size() <= 9 && std::all_of(key.begin(), key.end(), [](char ch) {
        return ch >= '0' && ch <= '9';
      });
      if (!digits) bad_request("'logit_bias' keys must be token ids, got '" + key + "'", "logit_bias");
      if (!v.is_number() || !(v.get<double>() >= -100.0 && v.get<double>() <= 100.0))
        bad_request("'logit_bias' values must be numbers between -100 and 100", "logit_bias");
      sc.logit_bias.emplace_back(std::stoll(key), float(v.get<double>()));
    }
  }
  if (b.contains("seed") && !b["seed"].is_null()) {
    sc.seed = uint64_t(int_field(b, "seed", 0, INT64_MIN + 1, INT64_MAX));
  } else {
    static std::mt19937_64 rng{std::random_device{}()};
    static std::mutex m;
    std::lock_guard<std::mutex> g(m);
    sc.seed = rng();
  }
  return sc;
}

void refuse_unsupported(const json& b) {
  if (b.contains("response_format") && !b["response_format"].is_null()) {
    const json& rf = b["response_format"];
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
      bad_request("'response_format' must be an object with a string 'type'", "response_format");
    if (rf["type"] != "text" && rf["type"] != "json_object")
      throw HttpError{400, "'response_format' of type '" + rf["type"].get<std::string>() + "' is not supported by this server yet",
                      "invalid_request_error", "response_format"};
  }
}

// OpenAI chat messages: objects with a string role and content that is a string, null, or a list
// of parts (text parts are what a text model reads).
json checked_messages(const json& b) {
  if (!b.contains("messages")) bad_request("'messages' is required", "messages");
  const json& m = b["messages"];
  if (!m.is_array() || m.empty()) bad_request("'messages' must be a non-empty array", "messages");
  for (size_t i = 0; i < m.size(); ++i) {
    const json& x = m[i];
    std::string p = "messages[" + std::to_string(i) + "]";
    if (!x.is_object()) bad_request(p + " must be an object", p);
    if (!x.contains("role") || !x["role"].is_string()) bad_request(p + ".role must be a string", p + ".role");
    if (x.contains("content")) {
      const json& c = x["content"];
      if (c.is_array()) {
        for (const auto& part : c)
          if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
            bad_request(p + ".content parts must be objects with a string 'type'", p + ".content");
      } else if (!c.is_string() && !c.is_null()) {
        bad_request(p + ".content must be a string, null or an array of parts", p + ".content");
      }
    }
  }
  return m;
}

// The request's tools (OpenAI function tools) and their names; tool_choice "none" reads no calls back.
std::vector<std::string> checked_tools(const json& b, std::optional<json>& tools) {
  std::vector<std::string> names;
  if (!b.contains("tools") || b["tools"].is_null()) return names;
  const json& t = b["tools"];
  if (!t.is_array()) bad_request("'tools' must be an array", "tools");
  for (size_t i = 0; i < t.size(); ++i) {
    std::string p = "tools[" + std::to_string(i) + "]";
    if (!t[i].is_object() || t[i].value("type", "") != "function" || !t[i].contains("function") ||
        !t[i]["function"].is_object() || !t[i]["function"].contains("name") || !t[i]["function"]["name"].is_string())
      bad_request(p + " must be {\"type\": \"function\", \"function\": {\"name\": str, ...}}", p);
    names.push_back(t[i]["function"]["name"].get<std::string>());
  }
  if (!t.empty()) tools = t;
  if (b.contains("tool_choice") && b["tool_choice"].is_string() && b["tool_choice"] == "none") names.clear();
  return names;
}

// OpenAI's logprobs entry for the chosen token: its log-probability under the model (the softmax of
// the raw logits) and the `top` most likely alternatives.
json logprob_entry(const std::vector<float>& logits, int64_t chosen, int top, const Tokenizer& tok) {
  float mx = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (float l : logits) z += std::exp(double(l - mx));
  double lz = std::log(z) + mx;
  auto entry = [&](int64_t id) {
    std::string t = tok.decode(std::vector<int32_t>{int32_t(id)});
    json bytes = json::array();
    for (unsigned char ch : t) bytes.push_back(int(ch));
    return json{{"token", t}, {"logprob", double(logits[size_t(id)]) - lz}, {"bytes", bytes}};
  };
  json e = entry(chosen);
  json alts = json::array();
  if (top > 0) {
    std::vector<int64_t> idx(logits.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = int64_t(i);
    size_t k = std::min(idx.size(), size_t(top));
    std::partial_sort(idx.begin(), idx.begin() + long(k), idx.end(),
                      [&](int64_t a, int64_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
    for (size_t i = 0; i < k; ++i) alts.push_back(entry(idx[i]));
  }
  e["top_logprobs"] = alts;
  return e;
}

// The legacy /v1/completions logprobs object over entries [from, to) of a job's logprob_entry list:
// parallel lists of tokens, their log-probabilities, {token: logprob} alternatives and each token's
// offset in the generated text (counted from the first generated byte).
json completion_logprobs(const std::vector<json>& entries, size_t from, size_t to) {
  size_t offset = 0;
  for (size_t i = 0; i < from; ++i) offset += entries[i]["token"].get<std::string>().size();
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (size_t i = from; i < to; ++i) {
    const json& e = entries[i];
    tokens.push_back(e["token"]);
    lps.push_back(e["logprob"]);
    json alts = json::object();
    for (const auto& a : e["top_logprobs"])
      if (!alts.contains(a["token"].get<std::string>())) alts[a["token"].get<std::string>()] = a["logprob"];
    tops.push_back(alts);
    offsets.push_back(offset);
    offset += e["token"].get<std::string>().size();
  }
  return json{{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// A choice's logprobs over entries [from, to): chat's {"content": [...]} or the completions object.
json choice_logprobs(bool chat, const std::vector<json>& entries, size_t from, size_t to) {
  if (chat) return json{{"content", json(std::vector<json>(entries.begin() + long(from), entries.begin() + long(to)))}};
  return completion_logprobs(entries, from, to);
}

std::string sse(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

}  // namespace

struct Server::Impl {
  LoadedModel& lm;
  chat::ChatTemplate tmpl;
  std::unique_ptr<jinja::Template> compiled;
  std::vector<int64_t> stop_ids;
  ServerOptions opt;
  int64_t ctx;
  httplib::Server http;
  std::atomic<int> bound_port{0};

  // engine
  std::mutex mu;
  std::condition_variable cv;
  std::deque<JobPtr> queue;
  int active = 0;
  bool stopping = false;

  // metrics
  std::mutex metrics_mu;
  std::map<std::string, uint64_t> requests;  // "endpoint code" -> count
  uint64_t tokens_generated = 0, prompt_tokens = 0, prompt_tokens_reused = 0;
  uint64_t decode_steps = 0, decode_rows = 0;  // batched decode forwards and the rows they carried
  Histogram latency{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}};
  Histogram ttft{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  std::atomic<uint64_t> next_id{1};

  Impl(LoadedModel& m, chat::ChatTemplate t, ServerOptions o)
      : lm(m), tmpl(std::move(t)), opt(std::move(o)), ctx(m.model->cfg.max_position_embeddings) {
    compiled = std::make_unique<jinja::Template>(tmpl.source, tmpl.origin.empty() ? "chat_template" : tmpl.origin);
    stop_ids = chat_stop_ids(*lm.tokenizer, lm.generation, tmpl);
    if (opt.model_name.empty()) opt.model_name = "lmlab";
    setup_routes();
  }

  void count(const std::string& endpoint, int status) {
    std::lock_guard<std::mutex> g(metrics_mu);
    ++requests[endpoint + "\t" + std::to_string(status)];
  }

  // ---- the engine ----

  struct Slot {
    JobPtr job;
    std::unique_ptr<InferState> state;
    std::unique_ptr<Decoder> dec;
    std::unique_ptr<TextStreamer> streamer;
    std::unique_ptr<JsonPrefix> json;  // response_format json_object
    int64_t n = 0;
  };

  // Each token's text (for the JSON constraint), made on first use.
  std::vector<std::string> token_texts;
  const std::vector<std::string>& texts() {
    if (token_texts.empty()) {
      token_texts.resize(size_t(lm.tokenizer->vocab_size()));
      // special tokens decode to nothing here, so the constraint never picks one (nor a stop token)
      for (size_t t = 0; t < token_texts.size(); ++t)
        token_texts[t] = lm.tokenizer->decode(std::vector<int32_t>{int32_t(t)}, /*skip_special=*/true);
    }
    return token_texts;
  }

  // The tokens that keep the reply a prefix of a JSON object (special tokens, which have no text
  // here, are not among them; the reply ends when the object is complete).
  std::vector<uint8_t> json_allowed(const JsonPrefix& state) {
    const auto& tt = texts();
    std::vector<uint8_t> ok(tt.size(), 0);
    for (size_t t = 0; t < tt.size(); ++t) {
      if (tt[t].empty()) continue;
      JsonPrefix copy = state;
      ok[t] = copy.feed(tt[t]) ? 1 : 0;
    }
    return ok;
  }

  // Prompt prefixes shared between requests: the states of the last few prompts, right after their
  // prefill (forks share the cache tensors until one is written). A new prompt starts from the one
  // that shares its longest prefix (at least kMinShared tokens), cut back to that prefix; layers with
  // a recurrent state cannot be cut, so for them only a whole earlier prompt can be reused.
  static constexpr size_t kMinShared = 8;
  std::deque<InferState> prefixes;  // engine thread only

  InferState start_state(const std::vector<int64_t>& prompt, size_t& reused) {
    reused = 0;
    const InferState* best = nullptr;
    size_t best_p = 0;
    for (const auto& st : prefixes) {
      size_t p = 0;
      while (p < st.tokens.size() && p + 1 < prompt.size() && st.tokens[p] == prompt[p]) ++p;
      if (p > best_p) best_p = p, best = &st;
    }
    if (!best || best_p < kMinShared) return InferState(*lm.model);
    InferState st = best->fork();
    if (int64_t(best_p) < st.length()) {
      try {
        st.truncate(int64_t(best_p));
      } catch (const ValueError&) {  // a recurrent layer: cannot rewind
        return InferState(*lm.model);
      }
    }
    reused = best_p;
    return st;
  }

  void remember_prefix(const InferState& st) {
    prefixes.push_back(st.fork());
    while (prefixes.size() > size_t(std::max(2, opt.slots))) prefixes.pop_front();
  }

  void finish_slot(Slot& s, const std::string& reason) {
    std::string rest;
    std::string text = s.streamer->finish(&rest);
    if (!rest.empty()) s.job->push(rest);
    s.job->completion_tokens = s.n;
    {
      std::lock_guard<std::mutex> g(metrics_mu);
      tokens_generated += uint64_t(s.n);
    }
    release_slot();
    s.job->finish(reason, std::move(text));
    s.job.reset();
  }

  // The slot counts as free before its job reports done (so /metrics never shows it busy after).
  void release_slot() {
    std::lock_guard<std::mutex> g(mu);
    --active;
  }

  void run_engine() {
    std::vector<Slot> slots(size_t(std::max(1, opt.slots)));
    while (true) {
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stopping || !queue.empty() || active > 0; });
        if (stopping && queue.empty() && active == 0) return;
        for (auto& s : slots) {
          if (s.job || queue.empty()) continue;
          s.job = queue.front();
          queue.pop_front();
          ++active;
        }
      }
      // One step: admitted jobs prefill; every decoding job samples its next token from the logits it
      // holds, and those that go on are fed together in one batched forward.
      std::vector<Slot*> going_on;
      std::vector<int64_t> next_ids;
      for (auto& s : slots) {
        if (!s.job) continue;
        Job& j = *s.job;
        try {
          if (!s.dec) {  // admitted: prefill
            if (j.cancel) {
              s.streamer = std::make_unique<TextStreamer>(*lm.tokenizer, j.stop);
              finish_slot(s, "cancelled");
            } else {
              size_t reused = 0;
              s.state = std::make_unique<InferState>(start_state(j.prompt, reused));
              s.dec = std::make_unique<Decoder>(*lm.model, *s.state, j.sampler);
              s.streamer = std::make_unique<TextStreamer>(*lm.tokenizer, j.stop);
              s.json = j.json_object ? std::make_unique<JsonPrefix>() : nullptr;
              s.n = 0;
              s.dec->feed(std::vector<int64_t>(j.prompt.begin() + long(reused), j.prompt.end()));
              remember_prefix(*s.state);
              std::lock_guard<std::mutex> g(metrics_mu);
              prompt_tokens += j.prompt.size();
              prompt_tokens_reused += reused;
            }
          } else if (j.cancel) {
            finish_slot(s, "cancelled");
          } else if (Clock::now() > j.deadline) {
            finish_slot(s, "timeout");
          } else {
            int64_t next = s.json ? s.dec->sample_allowed(json_allowed(*s.json)) : s.dec->sample();
            ++s.n;
            if (s.json) s.json->feed(texts()[size_t(next)]);
            if (j.top_logprobs >= 0) j.push_logprob(logprob_entry(s.dec->logits(), next, j.top_logprobs, *lm.tokenizer));
            if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) {
              finish_slot(s, "stop");
            } else {
              std::string piece = s.streamer->push(next);
              if (!piece.empty()) j.push(std::move(piece));
              if (s.streamer->stopped() || (s.json && s.json->complete())) finish_slot(s, "stop");
              else if (s.n >= j.max_tokens || s.state->length() + 1 > ctx) finish_slot(s, "length");
              else going_on.push_back(&s), next_ids.push_back(next);
            }
          }
        } catch (const std::exception& e) {
          fail_slot(s, e.what());
        }
        if (!s.job) clear_slot(s);
      }
      if (going_on.empty()) continue;
      std::vector<Decoder*> decs;
      for (Slot* s : going_on) decs.push_back(s->dec.get());
      try {
        Decoder::feed_rows(decs, next_ids);
      } catch (const std::exception& e) {  // the rows' caches may be half-written: every row ends
        for (Slot* s : going_on) fail_slot(*s, e.what()), clear_slot(*s);
      }
      {
        std::lock_guard<std::mutex> g(metrics_mu);
        ++decode_steps;
        decode_rows += going_on.size();
      }
    }
  }

  // Ends the slot's job with an error (the text so far goes with it).
  void fail_slot(Slot& s, const std::string& what) {
    if (!s.job) return;
    if (!s.streamer) s.streamer = std::make_unique<TextStreamer>(*lm.tokenizer, s.job->stop);
    std::string text = s.streamer->finish();
    release_slot();
    s.job->finish("error", text, what);
    s.job.reset();
  }

  void clear_slot(Slot& s) {
    s.json.reset();
    s.state.reset();
    s.dec.reset();
    s.streamer.reset();
  }

  // Queues a job; false when the queue is full.
  bool submit(const JobPtr& j) {
    {
      std::lock_guard<std::mutex> g(mu);
      if (stopping) return false;
      int waiting = int(queue.size());
      int free_slots = std::max(0, opt.slots - active);
      if (waiting - free_slots >= opt.max_queue) return false;
      queue.push_back(j);
    }
    cv.notify_all();
    return true;
  }

  // ---- HTTP ----

  bool authorized(const httplib::Request& req) const {
    if (opt.api_key.empty()) return true;
    std::string want = "Bearer " + opt.api_key;
    std::string got = req.get_header_value("Authorization");
    // constant time in the key's length
    unsigned diff = unsigned(got.size() ^ want.size());
    for (size_t i = 0; i < want.size(); ++i) diff |= unsigned(uint8_t(want[i]) ^ uint8_t(i < got.size() ? got[i] : 0));
    return diff == 0;
  }

  void reply_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  json parse_body(const httplib::Request& req) {
    try {
      json b = json::parse(req.body);
      if (!b.is_object()) bad_request("the request body must be a JSON object");
      return b;
    } catch (const json::parse_error& e) {
      bad_request(std::string("the request body is not valid JSON: ") + e.what());
    }
  }

  int64_t max_tokens_of(const json& b, int64_t prompt_len) {
    int64_t room = ctx - prompt_len;
    if (room <= 0)
      bad_request("This model's maximum context length is " + std::to_string(ctx) + " tokens. However, your prompt has " +
                      std::to_string(prompt_len) + " tokens.",
                  "messages");
    const char* key = b.contains("max_completion_tokens") && !b["max_completion_tokens"].is_null() ? "max_completion_tokens" : "max_tokens";
    int64_t m = int_field(b, key, std::min<int64_t>(opt.max_tokens_default, room), 1, INT64_MAX);
    if (m > room)
      bad_request("This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                      std::to_string(prompt_len + m) + " tokens (" + std::to_string(prompt_len) + " in the prompt, " +
                      std::to_string(m) + " in the completion).",
                  key);
    return m;
  }

  // Jobs for a request's n choices (seed, seed + 1, ...).
  std::vector<JobPtr> make_jobs(const json& b, const std::vector<int64_t>& prompt, bool chat) {
    int64_t n = int_field(b, "n", 1, 1, 16);
    SamplerConfig sc = sampler_of(b);
    for (const auto& [id, bias] : sc.logit_bias)
      if (id >= lm.model->cfg.vocab_size)
        bad_request("'logit_bias' names token " + std::to_string(id) + ", past the vocabulary of " +
                        std::to_string(lm.model->cfg.vocab_size),
                    "logit_bias");
    std::vector<std::string> stop = stop_field(b);
    int64_t max_tokens = max_tokens_of(b, int64_t(prompt.size()));
    int top_logprobs = -1;
    if (!chat) {  // /v1/completions: logprobs = how many alternatives (0 = the chosen tokens only)
      if (b.contains("logprobs") && !b["logprobs"].is_null()) top_logprobs = int(int_field(b, "logprobs", 0, 0, 20));
    } else if (bool_field(b, "logprobs", false)) {
      top_logprobs = int(int_field(b, "top_logprobs", 0, 0, 20));
    } else if (b.contains("top_logprobs") && !b["top_logprobs"].is_null()) {
      bad_request("'top_logprobs' needs 'logprobs': true", "top_logprobs");
    }
    bool json_object = b.contains("response_format") && b["response_format"].is_object() &&
                       b["response_format"].value("type", "") == "json_object";
    std::vector<JobPtr> jobs;
    for (int64_t i = 0; i < n; ++i) {
      auto j = std::make_shared<Job>();
      j->prompt = prompt;
      j->sampler = sc;
      j->sampler.seed = sc.seed + uint64_t(i);
      j->max_tokens = max_tokens;
      j->stop = stop;
      j->top_logprobs = top_logprobs;
      j->json_object = json_object;
      j->deadline = Clock::now() + std::chrono::seconds(opt.request_timeout_s);
      jobs.push_back(j);
    }
    for (auto& j : jobs)
      if (!submit(j)) {
        for (auto& k : jobs) k->cancel = true;
        throw HttpError{503, "the server is busy (" + std::to_string(opt.max_queue) + " requests already waiting); retry later",
                        "server_error", ""};
      }
    return jobs;
  }

  // Blocks until every job is done (or the client is gone: then cancels them).
  void wait_all(const std::vector<JobPtr>& jobs) {
    for (auto& j : jobs) {
      std::unique_lock<std::mutex> lk(j->mu);
      j->cv.wait(lk, [&] { return j->done; });
    }
  }

  void record(const std::vector<JobPtr>& jobs, Clock::time_point t0) {
    std::lock_guard<std::mutex> g(metrics_mu);
    latency.observe(seconds_since(t0));
    for (auto& j : jobs)
      if (j->ttft_s >= 0) ttft.observe(j->ttft_s);
  }

  // httplib's resource releaser: a response that was not sent whole means the client went away.
  static httplib::ContentProviderResourceReleaser cancel_unless_sent(std::vector<JobPtr> jobs) {
    return [jobs](bool success) {
      if (!success)
        for (auto& k : jobs) k->cancel = true;
    };
  }

  static std::string openai_finish(const std::string& r) { return r == "length" || r == "timeout" ? "length" : "stop"; }

  // The answer to a completion request (chat or not): whole, or as server-sent events.
  static json tool_calls_json(const std::vector<ToolCall>& calls, const std::string& id, bool with_index) {
    json out = json::array();
    for (size_t k = 0; k < calls.size(); ++k) {
      json c = {{"id", "call_" + id + "_" + std::to_string(k)}, {"type", "function"},
                {"function", {{"name", calls[k].name}, {"arguments", calls[k].arguments}}}};
      if (with_index) c["index"] = k;
      out.push_back(c);
    }
    return out;
  }

  void respond(const httplib::Request&, httplib::Response& res, const json& b, const std::vector<int64_t>& prompt, bool chat,
               const std::string& endpoint, const std::vector<std::string>& tool_names = {}) {
    auto t0 = Clock::now();
    bool stream = bool_field(b, "stream", false);
    bool include_usage = stream && b.contains("stream_options") && b["stream_options"].is_object() &&
                         b["stream_options"].value("include_usage", false);
    std::vector<JobPtr> jobs = make_jobs(b, prompt, chat);
    std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
    int64_t created = unix_time();
    std::string model = opt.model_name;
    auto usage = [jobs, prompt]() {
      int64_t c = 0;
      for (auto& j : jobs) c += j->completion_tokens;
      return json{{"prompt_tokens", int64_t(prompt.size())}, {"completion_tokens", c}, {"total_tokens", int64_t(prompt.size()) + c}};
    };
    auto error_of = [jobs]() -> std::string {
      for (auto& j : jobs)
        if (j->finish_reason == "error") return j->error;
      return {};
    };
    if (!stream) {
      // Chunked, with a space (JSON allows leading whitespace) every 2 s while the generation
      // runs: a client that has gone away fails the write, and its jobs are cancelled.
      res.status = 200;
      res.set_chunked_content_provider(
          "application/json",
          [this, jobs, chat, id, created, model, usage, error_of, t0, tool_names](size_t, httplib::DataSink& sink) {
            for (auto& j : jobs) {
              std::unique_lock<std::mutex> lk(j->mu);
              while (!j->done) {
                if (j->cv.wait_for(lk, std::chrono::seconds(2), [&] { return j->done; })) break;
                lk.unlock();
                bool ok = sink.write(" ", 1);
                lk.lock();
                if (!ok) {
                  for (auto& k : jobs) k->cancel = true;
                  return false;
                }
              }
            }
            record(jobs, t0);
            std::string err = error_of();
            json body;
            if (!err.empty()) {
              body = error_body(HttpError{500, "generation failed: " + err, "server_error", ""});
            } else {
              json choices = json::array();
              for (size_t i = 0; i < jobs.size(); ++i) {
                json c = {{"index", i}};
                std::string finish = openai_finish(jobs[i]->finish_reason);
                if (chat) {
                  c["message"] = {{"role", "assistant"}, {"content", jobs[i]->text}};
                  if (!tool_names.empty()) {
                    ParsedReply pr = parse_tool_calls(jobs[i]->text, tool_names);
                    if (!pr.calls.empty()) {
                      c["message"]["content"] = pr.content.empty() ? json(nullptr) : json(pr.content);
                      c["message"]["tool_calls"] = tool_calls_json(pr.calls, id + "_" + std::to_string(i), false);
                      finish = "tool_calls";
                    }
                  }
                } else {
                  c["text"] = jobs[i]->text;
                }
                c["logprobs"] = jobs[i]->top_logprobs >= 0
                                    ? choice_logprobs(chat, jobs[i]->logprobs, 0, jobs[i]->logprobs.size())
                                    : json(nullptr);
                c["finish_reason"] = finish;
                choices.push_back(c);
              }
              body = {{"id", id}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created},
                      {"model", model}, {"choices", choices}, {"usage", usage()}};
            }
            std::string s = body.dump(-1, ' ', false, json::error_handler_t::replace);
            sink.write(s.data(), s.size());
            sink.done();
            return true;
          },
          cancel_unless_sent(jobs));
      count(endpoint, 200);
      return;
    }
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    auto chunk = [chat, id, created, model](size_t index, const json& delta_or_text, const json& finish,
                                            const json& logprobs = nullptr) {
      json c = {{"index", index}};
      if (chat) c["delta"] = delta_or_text;
      else c["text"] = delta_or_text;
      c["logprobs"] = logprobs;
      c["finish_reason"] = finish;
      return json{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                  {"model", model}, {"choices", json::array({c})}};
    };
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, jobs, chat, chunk, usage, include_usage, id, created, model, t0, tool_names](size_t, httplib::DataSink& sink) {
          // With tools, a reply streams as content up to where a tool call may begin
          // (tool_call_safe_prefix); from there it is held and, once whole, sent as tool calls or text.
          const bool hold = chat && !tool_names.empty();
          std::vector<std::string> so_far(jobs.size());  // with tools: the reply so far
          std::vector<size_t> shown(jobs.size(), 0);      // with tools: bytes of it sent as content
          auto send = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
          if (chat)
            for (size_t i = 0; i < jobs.size(); ++i)
              if (!send(sse(chunk(i, json{{"role", "assistant"}, {"content", ""}}, nullptr)))) return false;
          std::vector<bool> finished(jobs.size(), false);
          size_t left = jobs.size();
          while (left > 0) {
            for (size_t i = 0; i < jobs.size(); ++i) {
              if (finished[i]) continue;
              Job& j = *jobs[i];
              std::deque<std::string> pieces;
              json lps = nullptr;
              bool done;
              {
                std::unique_lock<std::mutex> lk(j.mu);
                j.cv.wait_for(lk, std::chrono::milliseconds(jobs.size() > 1 ? 5 : 1000),
                              [&] { return j.done || !j.pieces.empty(); });
                pieces.swap(j.pieces);
                done = j.done;
                // the logprobs of the tokens behind this text go with its first chunk
                if (j.top_logprobs >= 0 && (!pieces.empty() || done) && j.logprobs_taken < j.logprobs.size()) {
                  lps = choice_logprobs(chat, j.logprobs, j.logprobs_taken, j.logprobs.size());
                  j.logprobs_taken = j.logprobs.size();
                }
              }
              if (hold) {
                for (auto& p : pieces) so_far[i] += p;
                pieces.clear();
                size_t safe = tool_call_safe_prefix(so_far[i]);
                if (safe > shown[i]) pieces.push_back(so_far[i].substr(shown[i], safe - shown[i])), shown[i] = safe;
              }
              for (auto& p : pieces) {
                json d = chat ? json{{"content", p}} : json(p);
                json lp = lps;
                lps = nullptr;
                if (!send(sse(chunk(i, d, nullptr, lp)))) {
                  for (auto& k : jobs) k->cancel = true;
                  return false;
                }
              }
              if (done) {
                finished[i] = true;
                --left;
                if (j.finish_reason == "error") {
                  send(sse(error_body(HttpError{500, "generation failed: " + j.error, "server_error", ""})));
                } else {
                  std::string finish = openai_finish(j.finish_reason);
                  if (hold) {  // the held rest of the reply: its tool calls, or its text
                    ParsedReply pr = parse_tool_calls(j.text, tool_names);
                    json d = json::object();
                    if (!pr.calls.empty()) {  // (the text before the first call was shown already)
                      d["tool_calls"] = tool_calls_json(pr.calls, id + "_" + std::to_string(i), true);
                      finish = "tool_calls";
                    } else if (j.text.size() > shown[i]) {
                      d["content"] = j.text.substr(shown[i]);
                    }
                    if (!d.empty()) {
                      if (!send(sse(chunk(i, d, nullptr, lps)))) return false;
                      lps = nullptr;
                    }
                  }
                  json d = chat ? json::object() : json("");
                  if (!send(sse(chunk(i, d, finish, lps)))) return false;
                }
              } else if (pieces.empty() && !sink.is_writable()) {
                for (auto& k : jobs) k->cancel = true;
                return false;
              }
            }
          }
          record(jobs, t0);
          if (include_usage)
            send(sse(json{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                          {"model", model}, {"choices", json::array()}, {"usage", usage()}}));
          send("data: [DONE]\n\n");
          sink.done();
          return true;
        },
        cancel_unless_sent(jobs));
    count(endpoint, 200);
  }

  // Wraps a handler: authorization, errors as OpenAI bodies, and the request count.
  template <class F>
  httplib::Server::Handler guarded(const std::string& endpoint, F f) {
    return [this, endpoint, f](const httplib::Request& req, httplib::Response& res) {
      try {
        if (!authorized(req)) throw HttpError{401, "invalid or missing API key", "invalid_request_error", ""};
        f(req, res);
      } catch (const HttpError& e) {
        reply_json(res, e.status, error_body(e));
        count(endpoint, e.status);
      } catch (const Error& e) {  // a template that raises, a tokenizer refusal: the request's fault
        reply_json(res, 400, error_body(HttpError{400, e.what(), "invalid_request_error", ""}));
        count(endpoint, 400);
      } catch (const std::exception& e) {
        reply_json(res, 500, error_body(HttpError{500, e.what(), "server_error", ""}));
        count(endpoint, 500);
      }
    };
  }

  void setup_routes() {
    http.set_payload_max_length(opt.max_body_bytes);
    http.set_read_timeout(opt.read_timeout_s, 0);
    http.set_write_timeout(opt.read_timeout_s, 0);
    http.set_keep_alive_timeout(5);
    int threads = opt.http_threads > 0 ? opt.http_threads : opt.slots + opt.max_queue + 8;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };

    // The page is public (it holds no data); with --api-key its requests need the key like any other.
    http.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(web_page(), "text/html; charset=utf-8");
      count("/", 200);
    });
    http.Get("/health", guarded("/health", [this](const httplib::Request&, httplib::Response& res) {
      reply_json(res, 200, json{{"status", "ok"}});
      count("/health", 200);
    }));
    http.Get("/v1/models", guarded("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      reply_json(res, 200, json{{"object", "list"},
                                {"data", json::array({json{{"id", opt.model_name}, {"object", "model"}, {"created", unix_time()},
                                                           {"owned_by", "lmlab"}, {"context_length", ctx}}})}});
      count("/v1/models", 200);
    }));
    http.Post("/v1/chat/completions", guarded("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      json b = parse_body(req);
      refuse_unsupported(b);
      chat::ChatRequest cr;
      cr.messages = decode_tool_call_arguments(checked_messages(b));
      cr.add_generation_prompt = true;
      std::vector<std::string> tool_names = checked_tools(b, cr.tools);
      if (b.contains("chat_template_kwargs") && b["chat_template_kwargs"].is_object())
        for (auto it = b["chat_template_kwargs"].begin(); it != b["chat_template_kwargs"].end(); ++it) cr.extra[it.key()] = it.value();
      std::string prompt = chat::render_chat(*compiled, cr, tmpl.bos_token, tmpl.eos_token);
      respond(req, res, b, encode_prompt(*lm.tokenizer, prompt), true, "/v1/chat/completions", tool_names);
    }));
    http.Post("/v1/completions", guarded("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      json b = parse_body(req);
      refuse_unsupported(b);
      if (!b.contains("prompt") || !b["prompt"].is_string())
        bad_request("'prompt' must be a string", "prompt");
      std::vector<int32_t> ids32 = lm.tokenizer->encode(b["prompt"].get<std::string>());
      std::vector<int64_t> ids(ids32.begin(), ids32.end());
      if (ids.empty() && lm.tokenizer->bos_id()) ids.push_back(*lm.tokenizer->bos_id());
      if (ids.empty()) bad_request("'prompt' encodes to no tokens", "prompt");
      respond(req, res, b, ids, false, "/v1/completions");
    }));
    http.Post("/tokenize", guarded("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      json b = parse_body(req);
      if (!b.contains("content") || !b["content"].is_string()) bad_request("'content' must be a string", "content");
      std::vector<int32_t> ids = lm.tokenizer->encode(b["content"].get<std::string>(), bool_field(b, "parse_special", true));
      reply_json(res, 200, json{{"tokens", ids}});
      count("/tokenize", 200);
    }));
    http.Post("/detokenize", guarded("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
      json b = parse_body(req);
      if (!b.contains("tokens") || !b["tokens"].is_array()) bad_request("'tokens' must be an array of token ids", "tokens");
      std::vector<int32_t> ids;
      for (const auto& t : b["tokens"]) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= lm.tokenizer->vocab_size())
          bad_request("'tokens' must hold ids in [0, " + std::to_string(lm.tokenizer->vocab_size()) + ")", "tokens");
        ids.push_back(int32_t(t.get<int64_t>()));
      }
      reply_json(res, 200, json{{"content", lm.tokenizer->decode(ids)}});
      count("/detokenize", 200);
    }));
    http.Get("/metrics", guarded("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      std::string out;
      {
        std::lock_guard<std::mutex> g(mu);
        out += "# HELP lmlab_queue_length Requests waiting for a slot\n# TYPE lmlab_queue_length gauge\n";
        out += "lmlab_queue_length " + std::to_string(queue.size()) + "\n";
        out += "# HELP lmlab_slots_active Requests decoding\n# TYPE lmlab_slots_active gauge\n";
        out += "lmlab_slots_active " + std::to_string(active) + "\n";
      }
      std::lock_guard<std::mutex> g(metrics_mu);
      out += "# HELP lmlab_requests_total Requests by endpoint and status\n# TYPE lmlab_requests_total counter\n";
      for (const auto& [k, v] : requests) {
        size_t tab = k.find('\t');
        out += "lmlab_requests_total{endpoint=\"" + k.substr(0, tab) + "\",code=\"" + k.substr(tab + 1) + "\"} " +
               std::to_string(v) + "\n";
      }
      out += "# HELP lmlab_tokens_generated_total Tokens generated\n# TYPE lmlab_tokens_generated_total counter\n";
      out += "lmlab_tokens_generated_total " + std::to_string(tokens_generated) + "\n";
      out += "# HELP lmlab_prompt_tokens_total Prompt tokens processed\n# TYPE lmlab_prompt_tokens_total counter\n";
      out += "lmlab_prompt_tokens_total " + std::to_string(prompt_tokens) + "\n";
      out += "# HELP lmlab_prompt_tokens_reused_total Prompt tokens taken from an earlier request's state (not fed again)\n";
      out += "# TYPE lmlab_prompt_tokens_reused_total counter\n";
      out += "lmlab_prompt_tokens_reused_total " + std::to_string(prompt_tokens_reused) + "\n";
      out += "# HELP lmlab_decode_steps_total Batched decode forwards (one per engine step with decoding slots)\n";
      out += "# TYPE lmlab_decode_steps_total counter\n";
      out += "lmlab_decode_steps_total " + std::to_string(decode_steps) + "\n";
      out += "# HELP lmlab_decode_rows_total Slot rows those forwards carried (rows / steps = the mean batch)\n";
      out += "# TYPE lmlab_decode_rows_total counter\n";
      out += "lmlab_decode_rows_total " + std::to_string(decode_rows) + "\n";
      latency.write(out, "lmlab_request_duration_seconds", "Time from request to its last byte (completions)");
      ttft.write(out, "lmlab_time_to_first_token_seconds", "Time from request to its first generated text");
      res.set_content(out, "text/plain; version=0.0.4");
    }));
    http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (res.status == 404)
        reply_json(res, 404, error_body(HttpError{404, "no such endpoint", "invalid_request_error", ""}));
      else if (res.status == 413)
        reply_json(res, 413, error_body(HttpError{413, "the request body exceeds " + std::to_string(opt.max_body_bytes) + " bytes",
                                                   "invalid_request_error", ""}));
      else if (res.body.empty())
        reply_json(res, res.status, error_body(HttpError{res.status, "bad request", "invalid_request_error", ""}));
    });
    http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      reply_json(res, 500, error_body(HttpError{500, "internal error", "server_error", ""}));
    });
  }
};

Server::Server(LoadedModel& model, chat::ChatTemplate tmpl, ServerOptions opt)
    : impl_(std::make_unique<Impl>(model, std::move(tmpl), std::move(opt))) {
  LMLAB_CHECK(model.model && model.tokenizer, ConfigError, "[serve] the model has no tokenizer");
}

Server::~Server() = default;

bool Server::listen() {
  int port = impl_->opt.port;
  if (port == 0) {
    port = impl_->http.bind_to_any_port(impl_->opt.host);
    if (port < 0) return false;
  } else if (!impl_->http.bind_to_port(impl_->opt.host, port)) {
    return false;
  }
  impl_->bound_port = port;
  // HTTP on a thread of its own; the engine on this one. The model's products run on this thread's
  // OpenMP team: the one that loaded the model, so the process keeps a single team. (A second team
  // on another thread gives libgomp more threads than cores, and it then puts its workers to sleep
  // between parallel regions: decoding ran at less than half speed.)
  bool ok = true;
  std::thread http([this, &ok] {
    ok = impl_->http.listen_after_bind();
    {  // however the listener ended, the engine drains what is in flight and returns
      std::lock_guard<std::mutex> g(impl_->mu);
      impl_->stopping = true;
    }
    impl_->cv.notify_all();
  });
  impl_->run_engine();
  http.join();
  return ok;
}

void Server::stop() {
  impl_->http.stop();
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
}

int Server::port() const { return impl_->bound_port; }

void Server::wait_until_ready() const {
  while (impl_->bound_port == 0 || !impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

}  // namespace lmlab::serve
