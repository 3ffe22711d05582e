// lmlab command-line entry point: registers the subcommands and turns lmlab errors into a message
// and a non-zero exit code (the only place that does, STYLE 2.6).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <new>

#include "apps/lmlab/commands.h"
#include "lmlab/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"lmlab — a C++ engine and laboratory for language models"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");
  lmlab::app::register_info(app);
  lmlab::app::register_data(app);
  lmlab::app::register_tokenizer(app);
  lmlab::app::register_train(app);
  lmlab::app::register_generate(app);
  lmlab::app::register_eval(app);
  lmlab::app::register_runs(app);
  lmlab::app::register_plot(app);
  lmlab::app::register_exp(app);
  lmlab::app::register_convert(app);
  lmlab::app::register_tokenize(app);
  lmlab::app::register_quantize(app);
  lmlab::app::register_logits(app);
  lmlab::app::register_template(app);
  lmlab::app::register_chat(app);
  lmlab::app::register_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lmlab::Error& e) {
    lmlab::app::progress_done();
    std::fprintf(stderr, "lmlab: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    lmlab::app::progress_done();
    std::fprintf(stderr, "lmlab: error: out of memory (the model, context or batch is too large for this machine)\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    lmlab::app::progress_done();
    std::fprintf(stderr, "lmlab: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    lmlab::app::progress_done();
    std::fprintf(stderr, "lmlab: unexpected error: %s\n", e.what());
    return 2;
  }
  return 0;
}
