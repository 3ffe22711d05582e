// Subcommand registration, one function per file in apps/lmlab/.
#pragma once
#include <CLI/CLI.hpp>

namespace lmlab::app {
void register_info(CLI::App& app);
}
