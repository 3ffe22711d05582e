// Terminal output helpers and the SIGINT handler shared by subcommands.
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/train/trainer.h"

namespace lmlab::app {

namespace {
bool g_open_line = false;
int g_calls = 0;
void on_sigint(int) {
  if (Trainer::stop_requested()) _exit(130);
  Trainer::request_stop();
  const char msg[] = "\n[lmlab] stopping after this step: saving a checkpoint (Ctrl-C again to abort)\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
}
}  // namespace

void progress_line(const std::string& line) {
  if (isatty(fileno(stdout))) {
    std::printf("\r\033[K%s", line.c_str());
    std::fflush(stdout);
    g_open_line = true;
  } else if (g_calls++ % 25 == 0) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

void progress_done() {
  if (g_open_line) std::printf("\n");
  g_open_line = false;
}

void log_line(const std::string& line) {
  progress_done();
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void install_stop_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace lmlab::app
