// `lmlab chat`: a terminal conversation with a model through its chat template. Replies stream as
// they are generated; Ctrl-C stops the reply being written (not the program); commands: /reset,
// /system TEXT, /save FILE, /exit (or end of input). Lines read from a pipe are the user's turns, so
// a conversation can be scripted.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "apps/lmlab/commands.h"
#include "lmlab/core/file.h"
#include "lmlab/core/parallel.h"
#include "lmlab/infer/model_loader.h"
#include "lmlab/serve/chat_session.h"

namespace lmlab::app {

namespace {

std::atomic<bool> g_interrupt{false};
void on_sigint(int) { g_interrupt = true; }

void install_interrupt() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a read at the prompt returns, and the loop asks again
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace

void register_chat(CLI::App& app) {
  auto* cmd = app.add_subcommand("chat", "Chat with a model in the terminal, through its chat template");
  static std::string model, system, template_file;
  static int64_t n = 512;
  static int threads = 0;
  static SamplerConfig sc;
  static bool verbose = false;
  cmd->add_option("-m,--model", model, "HF model folder, runs/<id> or .gguf")->required();
  cmd->add_option("--system", system, "System prompt");
  cmd->add_option("--template", template_file, "A Jinja chat template file (instead of the model's)");
  cmd->add_option("-n,--n-predict", n, "Most tokens per reply")->capture_default_str();
  cmd->add_option("--temp", sc.temperature, "Temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", sc.top_k, "Top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", sc.top_p, "Top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", sc.min_p, "Min-p (0 = off)")->capture_default_str();
  cmd->add_option("--seed", sc.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("-t,--threads", threads, "Threads (0 = all)");
  cmd->add_flag("-v,--verbose", verbose, "Print tokens/s and reused prompt tokens after each reply");
  cmd->callback([] {
    if (threads > 0) set_num_threads(threads);
    sc.validate();
    LoadedModel lm = load_model(model);
    LMLAB_CHECK(lm.tokenizer != nullptr, IoError, "[chat] '", lm.folder, "' has no tokenizer");
    chat::ChatTemplate ct = chat::model_chat_template(lm.folder, template_file);
    if (ct.is_default)
      std::fprintf(stderr, "lmlab: warning: '%s' has no chat template; using the default (ChatML)\n", model.c_str());
    serve::ChatSession session(*lm.model, *lm.tokenizer, ct, serve::chat_stop_ids(*lm.tokenizer, lm.generation, ct));
    session.set_system(system);
    const bool tty = isatty(STDIN_FILENO);
    install_interrupt();
    if (tty)
      std::fprintf(stderr, "lmlab chat: %s (template: %s). /reset, /system TEXT, /save FILE, /exit; Ctrl-C stops a reply.\n",
                   lm.folder.c_str(), ct.origin.c_str());
    std::string line;
    while (true) {
      if (tty) {
        std::fprintf(stdout, "> ");
        std::fflush(stdout);
      }
      g_interrupt = false;
      if (!std::getline(std::cin, line)) {
        if (g_interrupt && !std::cin.eof()) {  // Ctrl-C at the prompt
          std::cin.clear();
          std::fprintf(stderr, "\n(/exit or Ctrl-D to leave)\n");
          continue;
        }
        break;
      }
      if (line.empty()) continue;
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        session.reset();
        std::fprintf(stderr, "(conversation reset)\n");
        continue;
      }
      if (line.rfind("/system", 0) == 0) {
        std::string text = line.size() > 8 ? line.substr(8) : "";
        session.set_system(text);
        std::fprintf(stderr, text.empty() ? "(system prompt removed)\n" : "(system prompt set)\n");
        continue;
      }
      if (line.rfind("/save", 0) == 0) {
        std::string path = line.size() > 6 ? line.substr(6) : "";
        if (path.empty()) {
          std::fprintf(stderr, "usage: /save FILE\n");
          continue;
        }
        try {
          write_file_atomic(path, nlohmann::ordered_json{{"messages", session.messages()}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "chat");
          std::fprintf(stderr, "(saved %zu messages to %s)\n", session.messages().size(), path.c_str());
        } catch (const Error& e) {
          std::fprintf(stderr, "lmlab: error: %s\n", e.what());
        }
        continue;
      }
      if (line[0] == '/' && line.find(' ') == std::string::npos && line.size() < 12) {
        std::fprintf(stderr, "unknown command %s (/reset, /system TEXT, /save FILE, /exit)\n", line.c_str());
        continue;
      }
      GenerateOptions go;
      go.max_new_tokens = n;
      go.sampler = sc;
      go.on_token = [](int64_t) { return !g_interrupt.load(); };
      try {
        auto r = session.reply(line, go, [](const std::string& piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        });
        std::printf("\n");
        std::fflush(stdout);
        if (r.stats.stop_reason == "callback") std::fprintf(stderr, "(stopped)\n");
        if (r.stats.stop_reason == "context")
          std::fprintf(stderr, "(the context is full: /reset to start over)\n");
        if (verbose)
          std::fprintf(stderr, "[%lld prompt tokens, %lld reused; %lld new at %.1f tok/s; stop: %s]\n",
                       (long long)r.stats.prompt_tokens + (long long)session.reused_tokens(),
                       (long long)session.reused_tokens(), (long long)r.stats.new_tokens, r.stats.decode_tok_s(),
                       r.stats.stop_reason.c_str());
      } catch (const Error& e) {  // a prompt over the context, a template that raises: the chat goes on
        std::fprintf(stderr, "lmlab: error: %s\n", e.what());
      }
    }
  });
}

}  // namespace lmlab::app
