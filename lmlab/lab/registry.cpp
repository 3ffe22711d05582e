// Run registry over SQLite (https://sqlite.org/c3ref/intro.html): RAII wrappers for the
// connection and cached prepared statements, schema migrations recorded in schema_version,
// every write in a BEGIN IMMEDIATE transaction, and git HEAD resolution without running git
// (https://git-scm.com/docs/gitrepository-layout).
#include "lmlab/lab/registry.h"

#include <sqlite3.h>

#include <cctype>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "lmlab/core/error.h"

namespace lmlab {
namespace fs = std::filesystem;

namespace {

// How long a writer waits for another connection's write lock before failing. Long enough for
// a checkpoint or a large batch from another process; short enough that a stuck peer is noticed.
constexpr int kBusyTimeoutMs = 15000;

// Migration i (0-based) moves the schema from version i to i+1. Append only: a released
// migration is never edited, so every database reaches the same schema by the same steps.
const char* const kMigrations[] = {
    // v1: runs, metrics per step (one value per run/name/step), artefacts.
    R"sql(
CREATE TABLE runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  git_commit TEXT NOT NULL DEFAULT '',
  config_json TEXT NOT NULL DEFAULT '{}',
  summary_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE metrics(
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  value REAL,
  PRIMARY KEY(run_id, name, step)) WITHOUT ROWID;
CREATE TABLE artifacts(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  path TEXT NOT NULL,
  created_at TEXT NOT NULL);
CREATE INDEX artifacts_by_run ON artifacts(run_id, id);
)sql",
};
constexpr int kSchemaVersion = int(sizeof(kMigrations) / sizeof(kMigrations[0]));

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

std::string valid_json_or_default(const std::string& text, const char* what) {
  if (text.empty()) return "{}";
  LMLAB_CHECK(nlohmann::json::accept(text), ValueError, "[lab] ", what,
              " is not valid JSON: got '", text.substr(0, 80), text.size() > 80 ? "...'" : "'");
  return text;
}

}  // namespace

struct detail::RegistryDb {
  std::string path;
  std::unique_ptr<sqlite3, DbClose> db;
  std::mutex mu;  // one connection is used by one thread at a time; the statement cache too
  std::unordered_map<std::string, std::unique_ptr<sqlite3_stmt, StmtFinalize>> stmts;

  // Every SQLite failure ends here: IoError with SQLite's message and the database path, or
  // FormatError when the file is not (or no longer) a valid database.
  [[noreturn]] void fail(int rc, const std::string& what) const {
    std::string msg = db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc);
    int primary = rc & 0xff;
    std::string head = str_cat("[lab] ", what, " failed for database '", path, "': ", msg, " (sqlite code ", rc, ")");
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
      throw FormatError(head + "; the file is not a valid lmlab registry: move it aside and a new one is created");
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
      throw IoError(str_cat(head, "; another process held the database locked for more than ", kBusyTimeoutMs / 1000, " s"));
    throw IoError(head);
  }

  void exec(const char* sql, const char* what) {
    int rc = sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(rc, what);
  }

  sqlite3_stmt* prepare(const char* sql) {
    auto it = stmts.find(sql);
    if (it != stmts.end()) return it->second.get();
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db.get(), sql, -1, &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, StmtFinalize> s(raw);
    if (rc != SQLITE_OK) fail(rc, str_cat("preparing '", sql, "'"));
    return stmts.emplace(sql, std::move(s)).first->second.get();
  }
};

namespace {

// A cached statement in use: bind, step, read columns. The destructor resets it and clears its
// bindings so the next user starts clean even when this one threw midway.
class Stmt {
 public:
  Stmt(detail::RegistryDb& db, const char* sql) : db_(db), s_(db.prepare(sql)), sql_(sql) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind_int(int i, int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
  // NaN has no SQL REAL representation (SQLite would store NULL anyway): store NULL explicitly
  // and map it back to NaN on read, so a diverged loss is recorded, not dropped.
  Stmt& bind_double(int i, double v) {
    return check(std::isnan(v) ? sqlite3_bind_null(s_, i) : sqlite3_bind_double(s_, i, v));
  }
  Stmt& bind_text(int i, const std::string& v) {
    return check(sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT));
  }

  // true: a row is ready; false: done.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    db_.fail(rc, str_cat("running '", first_line(), "'"));
  }
  void run() {
    while (step()) {
    }
  }

  int64_t col_int(int c) const { return sqlite3_column_int64(s_, c); }
  double col_double(int c) const {
    if (sqlite3_column_type(s_, c) == SQLITE_NULL) return std::numeric_limits<double>::quiet_NaN();
    return sqlite3_column_double(s_, c);
  }
  std::string col_text(int c) const {
    const unsigned char* t = sqlite3_column_text(s_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), size_t(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) db_.fail(rc, str_cat("binding a parameter of '", first_line(), "'"));
    return *this;
  }
  std::string first_line() const {
    std::string s(sql_);
    size_t a = s.find_first_not_of(" \n");
    s = a == std::string::npos ? s : s.substr(a);
    return s.substr(0, s.find('\n'));
  }
  detail::RegistryDb& db_;
  sqlite3_stmt* s_;
  const char* sql_;
};

// BEGIN IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
// writes can fail with SQLITE_BUSY without the busy handler being consulted (deadlock avoidance),
// which would lose the write under concurrency.
class Txn {
 public:
  explicit Txn(detail::RegistryDb& db) : db_(db) { db_.exec("BEGIN IMMEDIATE", "beginning a transaction"); }
  ~Txn() {
    if (!committed_) sqlite3_exec(db_.db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  void commit() {
    db_.exec("COMMIT", "committing a transaction");
    committed_ = true;
  }

 private:
  detail::RegistryDb& db_;
  bool committed_ = false;
};

int current_version(detail::RegistryDb& db) {
  Stmt has(db, "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='schema_version'");
  has.step();
  if (has.col_int(0) == 0) return 0;
  Stmt v(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
  v.step();
  return int(v.col_int(0));
}

void migrate(detail::RegistryDb& db) {
  // Re-read the version inside the write transaction: two processes opening a new database at
  // once must not both apply the same migration.
  Txn txn(db);
  int version = current_version(db);
  LMLAB_CHECK(version <= kSchemaVersion, FormatError, "[lab] database '", db.path, "' has schema version ", version,
              ", newer than this build's ", kSchemaVersion, ": update lmlab to read it");
  if (version == kSchemaVersion) {
    txn.commit();
    return;
  }
  if (version == 0) {
    Stmt others(db, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' LIMIT 1");
    if (others.step())
      throw FormatError(str_cat("[lab] database '", db.path, "' is an SQLite database but not an lmlab registry (it has table '",
                                others.col_text(0), "' and no schema_version): choose another path"));
    db.exec("CREATE TABLE schema_version(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            "creating the schema_version table");
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    db.exec(kMigrations[v], str_cat("migrating the schema to version ", v + 1).c_str());
    Stmt rec(db, "INSERT INTO schema_version(version, applied_at) VALUES(?, ?)");
    rec.bind_int(1, v + 1).bind_text(2, utc_now_iso8601()).run();
  }
  txn.commit();
}

void require_run(detail::RegistryDb& db, int64_t run) {
  Stmt s(db, "SELECT 1 FROM runs WHERE id = ?");
  s.bind_int(1, run);
  LMLAB_CHECK(s.step(), ValueError, "[lab] no run with id ", run, " in database '", db.path, "'");
}

RunInfo read_run(const Stmt& s) {
  RunInfo r;
  r.id = s.col_int(0);
  r.name = s.col_text(1);
  r.kind = s.col_text(2);
  r.status = s.col_text(3);
  r.started = s.col_text(4);
  r.finished = s.col_text(5);
  r.git_commit = s.col_text(6);
  r.config_json = s.col_text(7);
  r.summary_json = s.col_text(8);
  return r;
}

#define LMLAB_RUN_COLUMNS \
  "SELECT id, name, kind, status, started_at, COALESCE(finished_at, ''), git_commit, config_json, summary_json FROM runs "

}  // namespace

RunRegistry::RunRegistry(std::unique_ptr<detail::RegistryDb> db) : db_(std::move(db)) {}
RunRegistry::RunRegistry(RunRegistry&&) noexcept = default;
RunRegistry& RunRegistry::operator=(RunRegistry&&) noexcept = default;
RunRegistry::~RunRegistry() = default;

int RunRegistry::schema_version() { return kSchemaVersion; }

detail::RegistryDb& RunRegistry::db() const {
  LMLAB_CHECK(db_, ValueError, "[lab] RunRegistry used after being moved from");
  return *db_;
}

const std::string& RunRegistry::path() const { return db().path; }

RunRegistry RunRegistry::open(const std::string& path) {
  LMLAB_CHECK(!path.empty(), ValueError, "[lab] registry path is empty");
  auto impl = std::make_unique<detail::RegistryDb>();
  impl->path = path;
  std::error_code ec;
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    LMLAB_CHECK(!ec, IoError, "[lab] cannot create folder '", parent.string(), "' for database '", path, "': ", ec.message());
  }
  LMLAB_CHECK(!fs::is_directory(path, ec), IoError, "[lab] database path '", path, "' is a directory, expected a file");

  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  impl->db.reset(raw);  // sqlite allocates a handle even on failure; it must be closed either way
  if (rc != SQLITE_OK) impl->fail(rc, "opening");
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);

  // WAL: readers never block the writer and see the last committed state, so `lmlab runs` can
  // read while a trainer logs. The first statement is also where a non-database file fails.
  {
    Stmt wal(*impl, "PRAGMA journal_mode=WAL");
    wal.run();
  }
  // FULL: a committed metric survives power loss, not just a process crash (NORMAL in WAL mode
  // may roll back the last commits); batched log_metrics keeps the fsync count per step at one.
  impl->exec("PRAGMA synchronous=FULL", "setting synchronous=FULL");
  impl->exec("PRAGMA foreign_keys=ON", "enabling foreign keys");
  migrate(*impl);
  return RunRegistry(std::move(impl));
}

int64_t RunRegistry::create_run(const std::string& name, const std::string& kind, const std::string& config_json,
                                const std::string& git_commit) {
  LMLAB_CHECK(!name.empty(), ValueError, "[lab] create_run: run name is empty");
  LMLAB_CHECK(!kind.empty(), ValueError, "[lab] create_run: run kind is empty (expected e.g. \"train\" or \"exp\")");
  std::string config = valid_json_or_default(config_json, "create_run: config_json");
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Txn txn(db);
  Stmt s(db,
         "INSERT INTO runs(name, kind, status, started_at, git_commit, config_json, summary_json) "
         "VALUES(?, ?, 'running', ?, ?, ?, '{}')");
  s.bind_text(1, name).bind_text(2, kind).bind_text(3, utc_now_iso8601()).bind_text(4, git_commit).bind_text(5, config);
  s.run();
  int64_t id = sqlite3_last_insert_rowid(db.db.get());
  txn.commit();
  return id;
}

void RunRegistry::log_metric(int64_t run, int64_t step, const std::string& name, double value) {
  log_metrics(run, step, {{name, value}});
}

void RunRegistry::log_metrics(int64_t run, int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  for (const auto& [name, value] : values)
    LMLAB_CHECK(!name.empty(), ValueError, "[lab] log_metrics: empty metric name for run ", run, " at step ", step);
  if (values.empty()) return;
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Txn txn(db);
  require_run(db, run);
  for (const auto& [name, value] : values) {
    Stmt s(db,
           "INSERT INTO metrics(run_id, name, step, value) VALUES(?, ?, ?, ?) "
           "ON CONFLICT(run_id, name, step) DO UPDATE SET value = excluded.value");
    s.bind_int(1, run).bind_text(2, name).bind_int(3, step).bind_double(4, value);
    s.run();
  }
  txn.commit();
}

void RunRegistry::add_artifact(int64_t run, const std::string& kind, const std::string& path) {
  LMLAB_CHECK(!kind.empty(), ValueError, "[lab] add_artifact: artefact kind is empty for run ", run);
  LMLAB_CHECK(!path.empty(), ValueError, "[lab] add_artifact: artefact path is empty for run ", run);
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Txn txn(db);
  require_run(db, run);
  Stmt s(db, "INSERT INTO artifacts(run_id, kind, path, created_at) VALUES(?, ?, ?, ?)");
  s.bind_int(1, run).bind_text(2, kind).bind_text(3, path).bind_text(4, utc_now_iso8601());
  s.run();
  txn.commit();
}

void RunRegistry::finish_run(int64_t run, const std::string& status, const std::string& summary_json) {
  LMLAB_CHECK(status == "done" || status == "failed" || status == "interrupted", ValueError,
              "[lab] finish_run: status must be \"done\", \"failed\" or \"interrupted\", got \"", status, "\"");
  std::string summary = valid_json_or_default(summary_json, "finish_run: summary_json");
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Txn txn(db);
  Stmt s(db, "UPDATE runs SET status = ?, finished_at = ?, summary_json = ? WHERE id = ?");
  s.bind_text(1, status).bind_text(2, utc_now_iso8601()).bind_text(3, summary).bind_int(4, run);
  s.run();
  LMLAB_CHECK(sqlite3_changes(db.db.get()) == 1, ValueError, "[lab] finish_run: no run with id ", run, " in database '",
              db.path, "'");
  txn.commit();
}

std::vector<RunInfo> RunRegistry::list_runs(int limit) const {
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Stmt s(db, LMLAB_RUN_COLUMNS "ORDER BY id DESC LIMIT ?");
  s.bind_int(1, limit > 0 ? limit : -1);  // a negative LIMIT means no limit in SQLite
  std::vector<RunInfo> out;
  while (s.step()) out.push_back(read_run(s));
  return out;
}

RunInfo RunRegistry::get_run(int64_t id) const {
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Stmt s(db, LMLAB_RUN_COLUMNS "WHERE id = ?");
  s.bind_int(1, id);
  LMLAB_CHECK(s.step(), ValueError, "[lab] no run with id ", id, " in database '", db.path, "'");
  return read_run(s);
}

std::vector<std::pair<int64_t, double>> RunRegistry::metric_series(int64_t run, const std::string& name) const {
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Stmt s(db, "SELECT step, value FROM metrics WHERE run_id = ? AND name = ? ORDER BY step");
  s.bind_int(1, run).bind_text(2, name);
  std::vector<std::pair<int64_t, double>> out;
  while (s.step()) out.emplace_back(s.col_int(0), s.col_double(1));
  return out;
}

std::vector<std::string> RunRegistry::metric_names(int64_t run) const {
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Stmt s(db, "SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY name");
  s.bind_int(1, run);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.col_text(0));
  return out;
}

std::vector<ArtifactInfo> RunRegistry::artifacts(int64_t run) const {
  detail::RegistryDb& db = this->db();
  std::lock_guard lock(db.mu);
  Stmt s(db, "SELECT kind, path, created_at FROM artifacts WHERE run_id = ? ORDER BY id");
  s.bind_int(1, run);
  std::vector<ArtifactInfo> out;
  while (s.step()) out.push_back({s.col_text(0), s.col_text(1), s.col_text(2)});
  return out;
}

std::string utc_now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ---- git HEAD without git ---------------------------------------------------------------

namespace {

// First line of a small text file, without trailing whitespace; "" when unreadable.
std::string read_first_line(const fs::path& p) {
  std::ifstream f(p);
  std::string line;
  if (!f || !std::getline(f, line)) return "";
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

bool is_object_id(const std::string& s) {
  if (s.size() != 40 && s.size() != 64) return false;  // SHA-1 or SHA-256 repositories
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string resolve_ref(const fs::path& gitdir, const fs::path& commondir, std::string ref) {
  // Symbolic refs can chain (HEAD -> refs/heads/x -> ...); a few hops cover every real case
  // and the bound stops a cycle.
  for (int hop = 0; hop < 8; ++hop) {
    if (ref.find("..") != std::string::npos) return "";
    std::string content;
    for (const fs::path& base : {gitdir, commondir}) {
      content = read_first_line(base / ref);
      if (!content.empty()) break;
    }
    if (content.empty()) {
      // Not loose: look it up in packed-refs ("<id> <refname>" lines; '#' header, '^' peeled tags).
      std::ifstream packed(commondir / "packed-refs");
      std::string line;
      while (std::getline(packed, line)) {
        if (line.empty() || line[0] == '#' || line[0] == '^') continue;
        size_t sp = line.find(' ');
        if (sp == std::string::npos) continue;
        std::string name = line.substr(sp + 1);
        while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
        if (name == ref) return is_object_id(line.substr(0, sp)) ? lower(line.substr(0, sp)) : "";
      }
      return "";
    }
    if (content.rfind("ref:", 0) == 0) {
      size_t a = content.find_first_not_of(" \t", 4);
      ref = a == std::string::npos ? "" : content.substr(a);
      continue;
    }
    return is_object_id(content) ? lower(content) : "";
  }
  return "";
}

}  // namespace

std::string current_git_commit(const std::string& repo_dir) {
  std::error_code ec;
  fs::path dir = fs::absolute(repo_dir.empty() ? fs::path(".") : fs::path(repo_dir), ec);
  if (ec) return "";
  dir = dir.lexically_normal();
  fs::path dotgit;
  for (fs::path p = dir;; p = p.parent_path()) {
    if (fs::exists(p / ".git", ec)) {
      dotgit = p / ".git";
      break;
    }
    if (p == p.parent_path() || p.empty()) return "";
  }
  fs::path gitdir = dotgit;
  if (fs::is_regular_file(dotgit, ec)) {
    // Worktrees and submodules: ".git" is a file "gitdir: <path>", relative to its folder.
    std::string line = read_first_line(dotgit);
    if (line.rfind("gitdir:", 0) != 0) return "";
    size_t a = line.find_first_not_of(" \t", 7);
    if (a == std::string::npos) return "";
    fs::path target(line.substr(a));
    gitdir = target.is_absolute() ? target : dotgit.parent_path() / target;
  }
  // Linked worktrees keep HEAD in their own folder but refs in the common one.
  fs::path commondir = gitdir;
  std::string common = read_first_line(gitdir / "commondir");
  if (!common.empty()) commondir = fs::path(common).is_absolute() ? fs::path(common) : gitdir / common;

  std::string head = read_first_line(gitdir / "HEAD");
  if (head.empty()) return "";
  if (head.rfind("ref:", 0) == 0) return resolve_ref(gitdir, commondir, "HEAD");
  return is_object_id(head) ? lower(head) : "";
}

}  // namespace lmlab
