// Run registry: every training run and experiment is a row in one SQLite database
// (DESIGN.md "Results": runs/lmlab.db with config, git commit, times, status, per-step metrics
// and artefacts). WAL mode + busy timeout so a trainer can write while `lmlab runs` reads;
// every write is one transaction, so a crash never leaves half a batch (https://sqlite.org/wal.html).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lmlab {

// Where the CLI keeps the registry unless told otherwise (DESIGN.md "Results").
inline constexpr const char* kDefaultRegistryPath = "runs/lmlab.db";

namespace detail {
struct RegistryDb;  // the SQLite connection and its statement cache (registry.cpp)
}

// One row of the runs table. Times are ISO-8601 UTC ("2025-01-31T12:00:00Z"); `finished` is
// empty while the run is still "running". JSON columns hold the text given (default "{}").
struct RunInfo {
  int64_t id = 0;
  std::string name;
  std::string kind;    // "train", "exp", ...
  std::string status;  // "running", "done", "failed", "interrupted"
  std::string started;
  std::string finished;
  std::string git_commit;
  std::string config_json;
  std::string summary_json;
};

// A file a run produced (checkpoint, report, plot), recorded by path.
struct ArtifactInfo {
  std::string kind;  // "checkpoint", "report", "plot", ...
  std::string path;
  std::string created;
};

// A handle on the registry database. Movable, not copyable; safe to share between threads
// (calls are serialised), and any number of handles in any number of processes may use the
// same file. Every SQLite failure is an IoError naming the database (FormatError when the
// file is not a database or is corrupt); bad arguments are ValueError naming the argument.
class RunRegistry {
 public:
  // Opens (creating the file, its parent folders and the schema when missing) and migrates
  // the schema to the current version.
  static RunRegistry open(const std::string& path);

  RunRegistry(RunRegistry&&) noexcept;
  RunRegistry& operator=(RunRegistry&&) noexcept;
  ~RunRegistry();

  const std::string& path() const;
  // The schema version this build writes (stored in the schema_version table).
  static int schema_version();

  // New run with status "running" and started = now; returns its id. `config_json` and
  // `summary_json` below must be valid JSON text or empty (stored as "{}").
  int64_t create_run(const std::string& name, const std::string& kind, const std::string& config_json,
                     const std::string& git_commit);
  // One metric value at `step`. Logging the same (run, name, step) again replaces the value
  // (a resumed run replays steps). NaN is stored as SQL NULL and read back as NaN.
  void log_metric(int64_t run, int64_t step, const std::string& name, double value);
  // Several metrics of one step in a single transaction (all or none are stored).
  void log_metrics(int64_t run, int64_t step, const std::vector<std::pair<std::string, double>>& values);
  void add_artifact(int64_t run, const std::string& kind, const std::string& path);
  // Ends a run: status is "done", "failed" or "interrupted"; finished = now.
  void finish_run(int64_t run, const std::string& status, const std::string& summary_json);

  // The newest `limit` runs, newest first (limit <= 0: all).
  std::vector<RunInfo> list_runs(int limit = 50) const;
  // Throws ValueError naming the id and the database when there is no such run.
  RunInfo get_run(int64_t id) const;
  // (step, value) pairs of one metric, ascending by step.
  std::vector<std::pair<int64_t, double>> metric_series(int64_t run, const std::string& name) const;
  // Names of the metrics a run has logged, sorted.
  std::vector<std::string> metric_names(int64_t run) const;
  // Artefacts in the order they were added.
  std::vector<ArtifactInfo> artifacts(int64_t run) const;

 private:
  explicit RunRegistry(std::unique_ptr<detail::RegistryDb> db);
  detail::RegistryDb& db() const;  // throws when used after a move
  std::unique_ptr<detail::RegistryDb> db_;
};

// The commit checked out in the git repository containing `repo_dir` (searched upwards, as git
// does), read from .git/HEAD, the loose ref file or packed-refs without running git; supports
// worktrees and submodules (".git" file with "gitdir:"). Returns "" when there is no repository
// or HEAD cannot be resolved (e.g. a fresh repository with no commit).
std::string current_git_commit(const std::string& repo_dir);

// Now, as ISO-8601 UTC with second precision: "2025-01-31T12:00:00Z".
std::string utc_now_iso8601();

}  // namespace lmlab
