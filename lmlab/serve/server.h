// lmlab's OpenAI-compatible HTTP server (cpp-httplib): /v1/chat/completions and /v1/completions
// (streamed as server-sent events or not), /v1/models, /health, /metrics (Prometheus text),
// /tokenize and /detokenize, and a web chat page at / (web_page.cpp).
//
// Requests become jobs for one engine that owns the model (it runs inside listen()). The engine keeps up to `slots`
// jobs decoding at once (continuous batching): at every step each decoding job samples its next
// token and all of them are fed in one forward (Decoder::feed_rows: batched products, each job's
// own caches); new jobs are prefilled and join between steps, and finished or abandoned ones (the
// client went away) leave. Each job decodes over its own InferState with its own sampler seed, so a
// request gives the same tokens whether it runs alone or beside others, up to float rounding of the
// batched products (greedy answers are tested equal). Waiting jobs queue up to `max_queue`; beyond that a
// request gets 503. Every request is validated first; a bad one gets 400 with an OpenAI-style error
// body.
//
// Tools: the request's tools are rendered through the chat template and the reply is read back for
// tool calls (tool_calls.h); with tools, a streamed reply shows its text up to where a call may begin
// (tool_call_safe_prefix) and sends the rest once whole, as tool calls or text.
//
// Prompt prefixes are shared between requests: a new job starts from a fork of the state of an
// earlier prompt that shares its longest prefix (InferState::fork()).
//
// response_format json_object constrains decoding to a JSON object (json_constraint.h).
//
// Not yet: one batched forward over all slots per step; other response_format types and logprobs
// on /v1/completions (these answer 400 "not supported").
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "lmlab/chat/chat_template.h"
#include "lmlab/infer/model_loader.h"

namespace lmlab::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (see Server::port)
  std::string model_name;          // the id /v1/models lists and responses carry
  int slots = 4;                   // jobs decoding at once
  int max_queue = 64;              // jobs waiting beyond the slots; more get 503
  size_t max_body_bytes = 4 << 20; // larger request bodies get 413
  int max_tokens_default = 256;    // when a request gives none (capped by the context)
  int read_timeout_s = 30;         // a client that sends nothing for this long is dropped
  int request_timeout_s = 600;     // a generation is stopped after this long
  std::string api_key;             // when set: "Authorization: Bearer <key>" is required
  int http_threads = 0;            // 0: slots + max_queue + 8
};

class Server {
 public:
  Server(LoadedModel& model, chat::ChatTemplate tmpl, ServerOptions opt);
  ~Server();
  // Binds and serves until stop(); returns false if the address could not be bound. The engine
  // (every model forward) runs on the calling thread, HTTP on threads of its own: call it from the
  // thread that loaded the model, so the process keeps one OpenMP team.
  bool listen();
  // Stops accepting, lets the requests in flight finish, and makes listen() return.
  void stop();
  // The bound port (after listen() started; with port 0, the one the system chose).
  int port() const;
  // Blocks until the server accepts connections (for tests and scripts).
  void wait_until_ready() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmlab::serve
