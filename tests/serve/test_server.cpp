// The OpenAI-compatible server over loopback with a tiny random model: endpoints, validation with
// OpenAI error bodies, streaming that adds up to the whole answer, concurrent requests that give
// what they give alone, the queue bound (503), the API key, and a client that goes away.
#include <gtest/gtest.h>

#include <httplib.h>

#include <atomic>
#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "lmlab/serve/chat_session.h"
#include "lmlab/serve/json_constraint.h"
#include "lmlab/serve/server.h"
#include "tests/serve/serve_test_util.h"

using namespace lmlab;
using json = nlohmann::ordered_json;

namespace {

LoadedModel tiny_model(int64_t hidden = 32, int64_t layers = 2, int64_t ctx = 256) {
  LoadedModel lm;
  lm.tokenizer = std::make_unique<Tokenizer>(serve_test::tiny_tokenizer());
  lm.model = std::make_unique<Transformer>(serve_test::tiny_config(lm.tokenizer->vocab_size(), hidden, layers, ctx), 11);
  lm.folder = "tiny";
  return lm;
}

using serve_test::chatml;

// A server on a free loopback port for the test's lifetime.
struct Running {
  serve::Server server;
  std::thread th;
  Running(LoadedModel& lm, serve::ServerOptions o) : server(lm, chatml(), (o.port = 0, o)) {
    th = std::thread([this] { server.listen(); });
    server.wait_until_ready();
  }
  ~Running() {
    server.stop();
    th.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(60, 0);
    return c;
  }
};

json chat_body(const std::string& user, int max_tokens, double temperature, uint64_t seed, bool stream = false) {
  return json{{"model", "tiny"}, {"messages", json::array({json{{"role", "user"}, {"content", user}}})},
              {"max_tokens", max_tokens}, {"temperature", temperature}, {"seed", seed}, {"stream", stream}};
}

std::string content_of(const httplib::Result& r) {
  EXPECT_TRUE(r);
  if (!r) return "";
  EXPECT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  return j["choices"][0]["message"]["content"].get<std::string>();
}

// The text of a streamed chat answer (the deltas joined) and whether it ended with [DONE].
std::string stream_text(const std::string& body, bool* done) {
  std::string text;
  *done = false;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    size_t end = body.find("\n\n", pos);
    std::string payload = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (payload == "[DONE]") {
      *done = true;
      break;
    }
    json j = json::parse(payload);
    const json& d = j["choices"][0]["delta"];
    if (d.contains("content")) text += d["content"].get<std::string>();
  }
  return text;
}

}  // namespace

TEST(Server, EndpointsAndGreedyAnswerLikeTheChatSession) {
  LoadedModel lm = tiny_model();
  Running r(lm, {});
  auto c = r.client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["context_length"], 256);
  auto res = c.Post("/v1/chat/completions", chat_body("the cat", 12, 0.0, 1).dump(), "application/json");
  std::string got = content_of(res);
  json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 3);
  // the same greedy turn through ChatSession (the path of lmlab chat)
  serve::ChatSession s(*lm.model, *lm.tokenizer, chatml(), serve::chat_stop_ids(*lm.tokenizer, {}, chatml()));
  GenerateOptions o;
  o.sampler.temperature = 0;
  o.max_new_tokens = 12;
  EXPECT_EQ(got, s.reply("the cat", o).text);
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(page->body.find("/v1/chat/completions"), std::string::npos);
  EXPECT_EQ(page->body.find("http://"), std::string::npos);  // no external fetches
  EXPECT_EQ(page->body.find("https://"), std::string::npos);
  auto tk = c.Post("/tokenize", R"({"content": "the cat"})", "application/json");
  ASSERT_TRUE(tk);
  json ids = json::parse(tk->body)["tokens"];
  auto dt = c.Post("/detokenize", json{{"tokens", ids}}.dump(), "application/json");
  ASSERT_TRUE(dt);
  EXPECT_EQ(json::parse(dt->body)["content"], "the cat");
  auto met = c.Get("/metrics");
  ASSERT_TRUE(met);
  EXPECT_NE(met->body.find("lmlab_requests_total{endpoint=\"/v1/chat/completions\",code=\"200\"} 1"), std::string::npos);
  EXPECT_NE(met->body.find("lmlab_request_duration_seconds_count 1"), std::string::npos);
}

// logit_bias +100 on one token makes every sampled token that one; penalties are accepted.
TEST(Server, LogitBiasAndPenaltiesReachTheSampler) {
  LoadedModel lm = tiny_model();
  Running r(lm, {});
  auto c = r.client();
  auto tk = c.Post("/tokenize", R"({"content": "cat"})", "application/json");
  ASSERT_TRUE(tk);
  const int64_t id = json::parse(tk->body)["tokens"].back().get<int64_t>();
  auto dt = c.Post("/detokenize", json{{"tokens", {id}}}.dump(), "application/json");
  ASSERT_TRUE(dt);
  const std::string piece = json::parse(dt->body)["content"].get<std::string>();
  json body = {{"prompt", "the"}, {"max_tokens", 4}, {"temperature", 1.0}, {"seed", 3},
               {"logit_bias", {{std::to_string(id), 100}}}, {"frequency_penalty", 0.5}, {"presence_penalty", 0.5}};
  auto res = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body);
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
  EXPECT_EQ(j["choices"][0]["text"], piece + piece + piece + piece);
}

TEST(Server, BadRequestsGetOpenAiErrors) {
  LoadedModel lm = tiny_model();
  Running r(lm, {});
  auto c = r.client();
  auto expect = [&](const std::string& path, const std::string& body, int status, const std::string& needle) {
    auto res = c.Post(path, body, "application/json");
    ASSERT_TRUE(res) << body;
    EXPECT_EQ(res->status, status) << body << " -> " << res->body;
    json j = json::parse(res->body);
    ASSERT_TRUE(j.contains("error")) << res->body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos) << res->body;
  };
  expect("/v1/chat/completions", "{not json", 400, "not valid JSON");
  expect("/v1/chat/completions", "[1]", 400, "must be a JSON object");
  expect("/v1/chat/completions", R"({"messages": []})", 400, "non-empty array");
  expect("/v1/chat/completions", R"({"messages": [{"content": "x"}]})", 400, "role must be a string");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})", 400, "content must be");
  expect("/v1/chat/completions", chat_body("x", 5, 7.0, 1).dump(), 400, "'temperature' must be between");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"})", 400, "must be an integer");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000})", 400,
         "maximum context length is 256 tokens");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "n": 1e300})", 400, "out of range");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "stop": [1]})", 400, "'stop' must be");
  expect("/v1/completions", R"({"prompt": "x", "logprobs": 21})", 400, "logprobs");
  expect("/v1/completions", R"({"prompt": "x", "logprobs": true})", 400, "logprobs");
  expect("/v1/chat/completions", R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", 400, "needs 'logprobs'");
  expect("/v1/completions", R"({"prompt": 5})", 400, "'prompt' must be a string");
  expect("/v1/completions", R"({"prompt": "x", "logit_bias": {"abc": 1}})", 400, "keys must be token ids");
  expect("/v1/completions", R"({"prompt": "x", "logit_bias": {"5": 1000}})", 400, "between -100 and 100");
  expect("/v1/completions", R"({"prompt": "x", "logit_bias": {"99999999": 1}})", 400, "past the vocabulary");
  expect("/v1/completions", R"({"prompt": "x", "logit_bias": [1]})", 400, "'logit_bias' must be an object");
  expect("/v1/completions", R"({"prompt": "x", "frequency_penalty": 3})", 400, "frequency_penalty");
  expect("/v1/completions", R"({"prompt": "x", "presence_penalty": "a"})", 400, "presence_penalty");
  expect("/detokenize", R"({"tokens": [999999]})", 400, "must hold ids");
  auto nf = c.Get("/v1/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  // the server is fine afterwards
  auto fine = c.Post("/v1/chat/completions", chat_body("the dog", 4, 0.0, 1).dump(), "application/json");
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->status, 200);
}

TEST(Server, StreamsAddUpAndConcurrentRequestsMatchSequentialOnes) {
  LoadedModel lm = tiny_model();
  serve::ServerOptions o;
  o.slots = 3;
  Running r(lm, o);
  const int N = 6;
  std::vector<std::string> sequential(N);
  {
    auto c = r.client();
    for (int i = 0; i < N; ++i)
      sequential[i] = content_of(c.Post("/v1/chat/completions", chat_body("the cat sat", 16, 1.0, 100 + i).dump(), "application/json"));
  }
  std::vector<std::future<std::string>> futs;
  for (int i = 0; i < N; ++i)
    futs.push_back(std::async(std::launch::async, [&, i] {
      auto c = r.client();
      if (i % 2 == 0) return content_of(c.Post("/v1/chat/completions", chat_body("the cat sat", 16, 1.0, 100 + i).dump(), "application/json"));
      auto res = c.Post("/v1/chat/completions", chat_body("the cat sat", 16, 1.0, 100 + i, true).dump(), "application/json");
      EXPECT_TRUE(res);
      bool done = false;
      std::string t = res ? stream_text(res->body, &done) : "";
      EXPECT_TRUE(done);
      return t;
    }));
  for (int i = 0; i < N; ++i) EXPECT_EQ(futs[size_t(i)].get(), sequential[size_t(i)]) << "request " << i;
}

TEST(Server, FullQueueAnswers503AndTheServerStaysUp) {
  LoadedModel lm = tiny_model(128, 4, 512);
  serve::ServerOptions o;
  o.slots = 1;
  o.max_queue = 0;
  Running r(lm, o);
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i)
    ts.emplace_back([&] {
      auto c = r.client();
      auto res = c.Post("/v1/chat/completions", chat_body("the cat", 400, 1.0, 1).dump(), "application/json");
      if (res && res->status == 200) ++ok;
      else if (res && res->status == 503 && res->body.find("busy") != std::string::npos) ++busy;
      else ++other;
    });
  for (auto& t : ts) t.join();
  EXPECT_GE(ok.load(), 1);
  EXPECT_GE(busy.load(), 1);
  EXPECT_EQ(other.load(), 0);
  auto h = r.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

TEST(Server, ApiKeyAndAClientThatGoesAway) {
  LoadedModel lm = tiny_model(128, 4, 512);
  serve::ServerOptions o;
  o.slots = 1;
  o.api_key = "sekret";
  Running r(lm, o);
  auto c = r.client();
  auto no = c.Get("/v1/models");
  ASSERT_TRUE(no);
  EXPECT_EQ(no->status, 401);
  httplib::Headers auth = {{"Authorization", "Bearer sekret"}};
  auto yes = c.Get("/v1/models", auth);
  ASSERT_TRUE(yes);
  EXPECT_EQ(yes->status, 200);
  // a streaming client that stops reading after a few chunks: its slot is freed
  {
    auto c2 = r.client();
    int chunks = 0;
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/chat/completions";
    req.headers = auth;
    req.body = chat_body("the cat", 480, 1.0, 1, true).dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
    auto res = c2.send(req);
    EXPECT_GE(chunks, 3);
  }
  // the single slot serves the next request, and the abandoned one was cancelled, not run to its
  // 480 tokens
  auto next = c.Post("/v1/chat/completions", auth, chat_body("the dog", 4, 0.0, 1).dump(), "application/json");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
  auto met = c.Get("/metrics", auth);
  ASSERT_TRUE(met);
  EXPECT_NE(met->body.find("lmlab_slots_active 0"), std::string::npos);
  size_t p = met->body.find("\nlmlab_tokens_generated_total ");
  ASSERT_NE(p, std::string::npos);
  long generated = std::stol(met->body.substr(p + 30));
  EXPECT_LT(generated, 400) << "the abandoned stream kept decoding";
}

TEST(Server, LogprobsOfTheChosenTokensAndTheirAlternatives) {
  LoadedModel lm = tiny_model();
  Running r(lm, {});
  auto c = r.client();
  json body = chat_body("the cat", 6, 0.0, 1);
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body);
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(int64_t(content.size()), j["usage"]["completion_tokens"].get<int64_t>());
  for (const auto& e : content) {
    EXPECT_LE(e["logprob"].get<double>(), 1e-9);
    ASSERT_EQ(e["top_logprobs"].size(), 3u);
    // greedy: the chosen token is the most likely one
    EXPECT_EQ(e["top_logprobs"][0]["token"], e["token"]);
    EXPECT_NEAR(e["top_logprobs"][0]["logprob"].get<double>(), e["logprob"].get<double>(), 1e-6);
    EXPECT_GE(e["top_logprobs"][0]["logprob"].get<double>(), e["top_logprobs"][1]["logprob"].get<double>());
  }
  // streamed, the same entries arrive spread over the chunks
  body["stream"] = true;
  auto sres = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(sres);
  size_t n = 0, pos = 0;
  while ((pos = sres->body.find("data: {", pos)) != std::string::npos) {
    size_t end = sres->body.find("\n\n", pos);
    json ch = json::parse(sres->body.substr(pos + 6, end - pos - 6));
    pos = end;
    const json& lp = ch["choices"][0]["logprobs"];
    if (lp.is_object()) n += lp["content"].size();
  }
  EXPECT_EQ(n, content.size());

  // /v1/completions: logprobs = the number of alternatives, in the legacy object.
  json cb = {{"prompt", "the cat"}, {"max_tokens", 6}, {"temperature", 0.0}, {"logprobs", 2}};
  auto cres = c.Post("/v1/completions", cb.dump(), "application/json");
  ASSERT_TRUE(cres);
  ASSERT_EQ(cres->status, 200) << cres->body;
  json cj = json::parse(cres->body);
  const json& lp = cj["choices"][0]["logprobs"];
  const size_t m = size_t(cj["usage"]["completion_tokens"].get<int64_t>());
  ASSERT_EQ(lp["tokens"].size(), m);
  ASSERT_EQ(lp["token_logprobs"].size(), m);
  ASSERT_EQ(lp["top_logprobs"].size(), m);
  ASSERT_EQ(lp["text_offset"].size(), m);
  size_t offset = 0;
  for (size_t k = 0; k < m; ++k) {
    const std::string tok = lp["tokens"][k].get<std::string>();
    EXPECT_LE(lp["token_logprobs"][k].get<double>(), 1e-9);
    EXPECT_LE(lp["top_logprobs"][k].size(), 2u);
    ASSERT_TRUE(lp["top_logprobs"][k].contains(tok)) << "greedy: the chosen token is among the alternatives";
    EXPECT_NEAR(lp["top_logprobs"][k][tok].get<double>(), lp["token_logprobs"][k].get<double>(), 1e-6);
    EXPECT_EQ(lp["text_offset"][k].get<size_t>(), offset);
    offset += tok.size();
  }
  // streamed, the chunks' lists add up to the same tokens at the same offsets
  cb["stream"] = true;
  auto csres = c.Post("/v1/completions", cb.dump(), "application/json");
  ASSERT_TRUE(csres);
  json streamed_tokens = json::array();
  pos = 0;
  while ((pos = csres->body.find("data: {", pos)) != std::string::npos) {
    size_t end = csres->body.find("\n\n", pos);
    json ch = json::parse(csres->body.substr(pos + 6, end - pos - 6));
    pos = end;
    const json& l = ch["choices"][0]["logprobs"];
    if (!l.is_object()) continue;
    for (size_t k = 0; k < l["tokens"].size(); ++k) {
      streamed_tokens.push_back(l["tokens"][k]);
      EXPECT_EQ(l["text_offset"][k].get<size_t>(), size_t(lp["text_offset"][streamed_tokens.size() - 1].get<size_t>()));
    }
  }
  EXPECT_EQ(streamed_tokens, lp["tokens"]);
}

TEST(Server, ToolsAreRenderedThroughTheTemplateAndValidated) {
  LoadedModel lm = tiny_model();
  Running r(lm, {});
  auto c = r.client();
  json body = chat_body("weather?", 4, 0.0, 1);
  body["tools"] = json::parse(R"([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])");
  auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  // (a random model calls no tool: the reply is text and finish_reason is not tool_calls)
  json j = json::parse(res->body);
  EXPECT_TRUE(j["choices"][0]["message"]["content"].is_string());
  body["stream"] = true;
  auto s = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(s);
  bool done = false;
  EXPECT_EQ(stream_text(s->body, &done), j["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_TRUE(done);
  body["stream"] = false;
  body["tools"] = json::parse(R"([{"type": "function"}])");
  auto bad = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("tools[0]"), std::string::npos);
}

TEST(Server, PromptPrefixesAreSharedAndAnswersDoNotChange) {
  LoadedModel lm = tiny_model();
  Running r(lm, {});
  auto c = r.client();
  auto ask = [&](const std::string& user) {
    json b = chat_body(user, 6, 0.0, 1);
    b["messages"].insert(b["messages"].begin(), json{{"role", "system"}, {"content", "the cat sat on the mat. the dog sat on the log."}});
    return content_of(c.Post("/v1/chat/completions", b.dump(), "application/json"));
  };
  std::string first = ask("hello");
  std::string second = ask("the dog");  // shares the system prompt's tokens with the first
  auto met = c.Get("/metrics");
  ASSERT_TRUE(met);
  size_t p = met->body.find("\nlmlab_prompt_tokens_reused_total ");
  ASSERT_NE(p, std::string::npos);
  EXPECT_GE(std::stol(met->body.substr(p + 34)), 8);
  // the same answers as a server that has seen nothing before
  Running fresh(lm, {});
  auto fc = fresh.client();
  json b = chat_body("the dog", 6, 0.0, 1);
  b["messages"].insert(b["messages"].begin(), json{{"role", "system"}, {"content", "the cat sat on the mat. the dog sat on the log."}});
  EXPECT_EQ(content_of(fc.Post("/v1/chat/completions", b.dump(), "application/json")), second);
  (void)first;
}

TEST(Server, JsonObjectResponseFormatConstrainsTheReply) {
  LoadedModel lm = tiny_model();
  Running r(lm, {});
  auto c = r.client();
  for (uint64_t seed : {1, 2, 3}) {
    json body = chat_body("the cat", 60, 1.0, seed);
    body["response_format"] = {{"type", "json_object"}};
    auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    json j = json::parse(res->body);
    std::string text = j["choices"][0]["message"]["content"].get<std::string>();
    lmlab::serve::JsonPrefix p;
    EXPECT_TRUE(p.feed(text)) << "not a JSON object prefix: " << text;
    if (j["choices"][0]["finish_reason"] == "stop") {
      EXPECT_TRUE(p.complete()) << text;
      EXPECT_TRUE(json::accept(text)) << text;
    }
  }
}
