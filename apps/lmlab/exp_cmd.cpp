// `lmlab exp list | run NAME`: experiments as data (experiments/*.json).
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/lab/experiments.h"

namespace lmlab::app {

void register_exp(CLI::App& app) {
  auto* exp = app.add_subcommand("exp", "Experiments: a paper's claim, rerun");
  exp->require_subcommand(1);
  auto* list = exp->add_subcommand("list", "List experiments");
  list->callback([] {
    for (const auto& e : list_experiments()) {
      std::string scales;
      for (auto& s : e.scales) scales += (scales.empty() ? "" : "|") + s;
      std::printf("%-24s [%s]  %s\n", e.name.c_str(), scales.c_str(), e.description.substr(0, 100).c_str());
    }
  });
  auto* run = exp->add_subcommand("run", "Run an experiment; writes results.json, report.md, report.html, SVG plots");
  static std::string name, scale = "tiny", out;
  static double minutes = 0;
  static uint64_t seed = 0;
  static int seeds = 1;
  run->add_option("name", name, "Experiment name (lmlab exp list)")->required();
  run->add_option("--scale", scale, "tiny | demo | small | full")->capture_default_str();
  run->add_option("--out", out, "Output folder (default: runs/<run id>)");
  run->add_option("--minutes", minutes, "Training time budget override");
  run->add_option("--seed", seed, "First seed (default: the experiment's own)");
  run->add_option("--seeds", seeds, "Repeat over this many seeds (seed, seed + 1, ...): figures as mean and spread")
      ->capture_default_str();
  run->callback([] {
    install_stop_handler();
    ExperimentContext ctx;
    ctx.scale = scale;
    ctx.out_dir = out;
    ctx.minutes = minutes;
    ctx.seed = seed;
    ctx.seeds = seeds;
    ctx.log = log_line;
    ctx.progress = progress_line;
    ExperimentResult r = run_experiment(name, ctx);
    progress_done();
    for (const auto& h : r.highlights) std::printf("%s\n", h.c_str());
    std::printf("report: %s\n", r.report_html.c_str());
  });
}

}  // namespace lmlab::app
