// `lmlab serve`: the OpenAI-compatible server over a model (lmlab/serve/server.h). SIGTERM or
// SIGINT stops accepting, lets the requests in flight finish, then exits.
#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <thread>

#include "apps/lmlab/commands.h"
#include "lmlab/core/parallel.h"
#include "lmlab/infer/model_loader.h"
#include "lmlab/serve/server.h"

namespace lmlab::app {

void register_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve a model over HTTP with OpenAI's API (chat and completions, streaming)");
  static std::string model, template_file;
  static serve::ServerOptions opt;
  static int threads = 0;
  cmd->add_option("-m,--model", model, "HF model folder, runs/<id> or .gguf")->required();
  cmd->add_option("--host", opt.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", opt.port, "Port (0: any free port, printed)")->capture_default_str();
  cmd->add_option("--name", opt.model_name, "Model id in /v1/models and responses (default: the folder name)");
  cmd->add_option("--slots", opt.slots, "Requests decoding at once")->capture_default_str();
  cmd->add_option("--max-queue", opt.max_queue, "Requests waiting beyond the slots (more get 503)")->capture_default_str();
  cmd->add_option("--max-body", opt.max_body_bytes, "Largest request body in bytes")->capture_default_str();
  cmd->add_option("--timeout", opt.request_timeout_s, "Seconds a generation may run")->capture_default_str();
  cmd->add_option("--api-key", opt.api_key, "Require 'Authorization: Bearer KEY'");
  cmd->add_option("--template", template_file, "A Jinja chat template file (instead of the model's)");
  cmd->add_option("-t,--threads", threads, "Compute threads (0 = all)");
  cmd->callback([] {
    if (threads > 0) set_num_threads(threads);
    LMLAB_CHECK(opt.slots >= 1 && opt.max_queue >= 0, ConfigError, "[serve] --slots must be >= 1 and --max-queue >= 0");
    // SIGTERM/SIGINT go to a watcher thread (blocked here before any thread starts).
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    LoadedModel lm = load_model(model);
    LMLAB_CHECK(lm.tokenizer != nullptr, IoError, "[serve] '", lm.folder, "' has no tokenizer");
    chat::ChatTemplate ct = chat::model_chat_template(lm.folder, template_file);
    if (ct.is_default)
      std::fprintf(stderr, "lmlab: warning: '%s' has no chat template; /v1/chat/completions uses the default (ChatML)\n",
                   model.c_str());
    if (opt.model_name.empty()) {
      std::string f = lm.folder;
      while (!f.empty() && f.back() == '/') f.pop_back();
      opt.model_name = f.substr(f.find_last_of('/') + 1);
    }
    serve::Server server(lm, ct, opt);
    std::thread watcher([&] {
      int sig = 0;
      sigwait(&set, &sig);
      std::fprintf(stderr, "lmlab serve: signal %d: finishing the requests in flight\n", sig);
      server.stop();
    });
    std::thread announce([&] {
      server.wait_until_ready();
      std::fprintf(stderr, "lmlab serve: %s on http://%s:%d (slots %d, queue %d)\n", opt.model_name.c_str(),
                   opt.host.c_str(), server.port(), opt.slots, opt.max_queue);
    });
    bool ok = server.listen();
    announce.detach();
    if (!ok) {
      pthread_kill(watcher.native_handle(), SIGTERM);
      watcher.join();
      throw IoError(str_cat("[serve] cannot listen on ", opt.host, ":", opt.port));
    }
    if (watcher.joinable()) {
      pthread_kill(watcher.native_handle(), SIGTERM);  // (listen returned on its own)
      watcher.join();
    }
  });
}

}  // namespace lmlab::app
