// `lmlab plot`: an SVG of metrics from one or more runs.
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/core/error.h"
#include "lmlab/lab/plot.h"
#include "lmlab/lab/registry.h"

namespace lmlab::app {

void register_plot(CLI::App& app) {
  auto* cmd = app.add_subcommand("plot", "Plot metrics of runs to an SVG (gnuplot)");
  static std::vector<int64_t> ids;
  static std::vector<std::string> metrics = {"train/loss"};
  static std::string out = "plot.svg", db = "runs/lmlab.db";
  static bool logy = false;
  cmd->add_option("ids", ids, "Run ids")->required();
  cmd->add_option("--metric", metrics, "Metric names (repeatable)")->capture_default_str();
  cmd->add_option("-o,--out", out, "SVG path")->capture_default_str();
  cmd->add_option("--db", db, "Registry database")->capture_default_str();
  cmd->add_flag("--logy", logy, "Logarithmic y axis");
  cmd->callback([] {
    RunRegistry r = RunRegistry::open(db);
    PlotSpec ps;
    ps.title = "lmlab runs";
    ps.xlabel = "step";
    ps.ylabel = metrics.size() == 1 ? metrics[0] : "value";
    ps.logy = logy;
    for (int64_t id : ids) {
      RunInfo info = r.get_run(id);
      for (const auto& m : metrics) {
        Series s{str_cat("run ", id, " (", info.name, ") ", m), {}, {}};
        for (auto& [step, v] : r.metric_series(id, m)) {
          s.x.push_back(double(step));
          s.y.push_back(v);
        }
        ps.series.push_back(s);
      }
    }
    std::printf("%s\n", plot_svg(ps, out).c_str());
  });
}

}  // namespace lmlab::app
