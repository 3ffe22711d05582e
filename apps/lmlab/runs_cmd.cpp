// `lmlab runs [show ID]`: the run registry.
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/lab/registry.h"

namespace lmlab::app {

void register_runs(CLI::App& app) {
  auto* cmd = app.add_subcommand("runs", "List runs in runs/lmlab.db (or `runs show ID`)");
  static std::string db = "runs/lmlab.db";
  static int limit = 20;
  static int64_t show_id = 0;
  cmd->add_option("--db", db, "Registry database")->capture_default_str();
  cmd->add_option("-n,--limit", limit, "Rows")->capture_default_str();
  auto* show = cmd->add_subcommand("show", "One run: config, summary, metrics, artefacts");
  show->add_option("id", show_id, "Run id")->required();
  cmd->callback([] {
    if (show_id > 0) return;
    RunRegistry r = RunRegistry::open(db);
    std::printf("%-5s %-28s %-6s %-12s %-20s %-20s %s\n", "id", "name", "kind", "status", "started", "finished", "commit");
    for (const auto& i : r.list_runs(limit))
      std::printf("%-5lld %-28s %-6s %-12s %-20s %-20s %.10s\n", (long long)i.id, i.name.c_str(), i.kind.c_str(),
                  i.status.c_str(), i.started.c_str(), i.finished.c_str(), i.git_commit.c_str());
  });
  show->callback([] {
    RunRegistry r = RunRegistry::open(db);
    RunInfo i = r.get_run(show_id);
    std::printf("run %lld  %s  (%s, %s)\nstarted %s  finished %s  commit %s\nsummary: %s\nmetrics:\n", (long long)i.id,
                i.name.c_str(), i.kind.c_str(), i.status.c_str(), i.started.c_str(), i.finished.c_str(),
                i.git_commit.c_str(), i.summary_json.c_str());
    for (const auto& m : r.metric_names(i.id)) {
      auto s = r.metric_series(i.id, m);
      if (!s.empty())
        std::printf("  %-22s %6zu points, last %.6g at step %lld\n", m.c_str(), s.size(), s.back().second,
                    (long long)s.back().first);
    }
    std::printf("artefacts:\n");
    for (const auto& a : r.artifacts(i.id)) std::printf("  %-11s %s\n", a.kind.c_str(), a.path.c_str());
  });
}

}  // namespace lmlab::app
