// `lmlab generate`: sample from a model folder or run (flags named as llama.cpp names them).
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/core/parallel.h"
#include "lmlab/infer/generate.h"
#include "lmlab/infer/model_loader.h"

namespace lmlab::app {

void register_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text from a model (run folder, checkpoint or HF folder)");
  static std::string model, prompt;
  static std::vector<std::string> stops;
  static int64_t n = 64;
  static int threads = 0;
  static SamplerConfig sc;
  static bool verbose = false;
  cmd->add_option("-m,--model", model, "runs/<id>, a checkpoint folder or an HF model folder")->required();
  cmd->add_option("-p,--prompt", prompt, "Prompt text")->required();
  cmd->add_option("-n,--n-predict", n, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temp", sc.temperature, "Temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", sc.top_k, "Top-k (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", sc.top_p, "Top-p (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", sc.min_p, "Min-p (0 = off)")->capture_default_str();
  cmd->add_option("--repeat-penalty", sc.repetition_penalty, "Repetition penalty (1 = off)")->capture_default_str();
  cmd->add_option("--seed", sc.seed, "Sampling seed")->capture_default_str();
  cmd->add_option("-r,--reverse-prompt", stops, "Stop string (repeatable)");
  cmd->add_option("-t,--threads", threads, "Threads (0 = all)");
  cmd->add_flag("-v,--verbose", verbose, "Print timings");
  cmd->callback([] {
    if (threads > 0) set_num_threads(threads);
    LoadedModel lm = load_model(model);
    LMLAB_CHECK(lm.tokenizer != nullptr, IoError, "[generate] '", lm.folder, "' has no tokenizer.json");
    GenerateOptions go;
    go.max_new_tokens = n;
    go.sampler = sc;
    go.stop = stops;
    std::printf("%s", prompt.c_str());
    std::fflush(stdout);
    auto r = generate_text(*lm.model, *lm.tokenizer, prompt, go, [](const std::string& piece) {
      std::printf("%s", piece.c_str());
      std::fflush(stdout);
    });
    std::printf("\n");
    if (verbose)
      std::fprintf(stderr, "[%s] prompt %lld tokens at %.1f tok/s, %lld new tokens at %.1f tok/s (stop: %s)\n",
                   lm.folder.c_str(), (long long)r.stats.prompt_tokens, r.stats.prefill_tok_s(),
                   (long long)r.stats.new_tokens, r.stats.decode_tok_s(), r.stats.stop_reason.c_str());
  });
}

}  // namespace lmlab::app
