// Subcommand registration, one file per subcommand (STYLE 2.9: parse, call one library entry
// point, report). Shared helpers for progress output live in common.cpp.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace lmlab::app {
void register_info(CLI::App& app);
void register_data(CLI::App& app);
void register_tokenizer(CLI::App& app);
void register_train(CLI::App& app);
void register_generate(CLI::App& app);
void register_eval(CLI::App& app);
void register_runs(CLI::App& app);
void register_plot(CLI::App& app);
void register_exp(CLI::App& app);
void register_convert(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_quantize(CLI::App& app);
void register_logits(CLI::App& app);
void register_template(CLI::App& app);
void register_chat(CLI::App& app);
void register_serve(CLI::App& app);

// Progress line: rewritten in place on a terminal, printed every `every` calls otherwise.
void progress_line(const std::string& line);
void progress_done();
void log_line(const std::string& line);
// Installs SIGINT -> Trainer::request_stop (a second SIGINT exits at once).
void install_stop_handler();
}  // namespace lmlab::app
