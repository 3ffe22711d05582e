// lmlab command-line entry point: parses the subcommand and turns lmlab errors into a message
// and a non-zero exit code (the only place that does, STYLE 2.6).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"lmlab — a C++ engine and laboratory for language models"};
  app.require_subcommand(1);
  lmlab::app::register_info(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lmlab::Error& e) {
    std::fprintf(stderr, "lmlab: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
