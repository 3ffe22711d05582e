// Run registry: round trip, persistence, concurrent writers (threads and processes) on one WAL
// database, clear errors for corrupt files and unknown runs, and git HEAD resolution.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "lmlab/core/error.h"
#include "tests/test_util.h"
#include "lmlab/lab/registry.h"

using namespace lmlab;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test, removed afterwards.
using lmlab::test::TempDir;
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

// "YYYY-MM-DDTHH:MM:SSZ" (std::regex avoided: GCC 12 warns inside it under sanitizers).
bool is_iso_utc(const std::string& s) {
  const std::string shape = "dddd-dd-ddTdd:dd:ddZ";
  if (s.size() != shape.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (shape[i] == 'd' ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != shape[i]) return false;
  return true;
}

bool is_lower_hex40(const std::string& s) {
  return s.size() == 40 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

}  // namespace

TEST(Registry, RoundTrip) {
  TempDir tmp;
  std::string db_path = tmp / "nested/runs/lmlab.db";  // parent folders are created
  RunRegistry reg = RunRegistry::open(db_path);
  EXPECT_EQ(reg.path(), db_path);

  int64_t id = reg.create_run("brown-gpt", "train", R"({"lr": 0.001, "layers": 2})", "abc123");
  EXPECT_GT(id, 0);
  RunInfo r = reg.get_run(id);
  EXPECT_EQ(r.name, "brown-gpt");
  EXPECT_EQ(r.kind, "train");
  EXPECT_EQ(r.status, "running");
  EXPECT_EQ(r.git_commit, "abc123");
  EXPECT_EQ(r.config_json, R"({"lr": 0.001, "layers": 2})");
  EXPECT_EQ(r.summary_json, "{}");
  EXPECT_TRUE(r.finished.empty());
  EXPECT_TRUE(is_iso_utc(r.started)) << r.started;

  // Steps logged out of order come back sorted; re-logging a step replaces its value.
  reg.log_metric(id, 20, "loss", 2.5);
  reg.log_metric(id, 10, "loss", 3.0);
  reg.log_metrics(id, 30, {{"loss", 2.0}, {"lr", 1e-3}, {"grad_norm", std::nan("")}});
  reg.log_metric(id, 20, "loss", 2.4);
  auto loss = reg.metric_series(id, "loss");
  ASSERT_EQ(loss.size(), 3u);
  EXPECT_EQ(loss[0], (std::pair<int64_t, double>{10, 3.0}));
  EXPECT_EQ(loss[1], (std::pair<int64_t, double>{20, 2.4}));
  EXPECT_EQ(loss[2], (std::pair<int64_t, double>{30, 2.0}));
  auto gn = reg.metric_series(id, "grad_norm");
  ASSERT_EQ(gn.size(), 1u);
  EXPECT_TRUE(std::isnan(gn[0].second));  // a diverged value is kept, as NaN
  reg.log_metric(id, 31, "loss", INFINITY);
  EXPECT_TRUE(std::isinf(reg.metric_series(id, "loss").back().second));
  EXPECT_EQ(reg.metric_names(id), (std::vector<std::string>{"grad_norm", "loss", "lr"}));
  EXPECT_TRUE(reg.metric_series(id, "nope").empty());

  reg.add_artifact(id, "checkpoint", "runs/1/step-30");
  reg.add_artifact(id, "report", "runs/1/report.html");
  auto arts = reg.artifacts(id);
  ASSERT_EQ(arts.size(), 2u);
  EXPECT_EQ(arts[0].kind, "checkpoint");
  EXPECT_EQ(arts[1].path, "runs/1/report.html");
  EXPECT_FALSE(arts[0].created.empty());

  reg.finish_run(id, "done", R"({"final_loss": 2.0})");
  r = reg.get_run(id);
  EXPECT_EQ(r.status, "done");
  EXPECT_EQ(r.summary_json, R"({"final_loss": 2.0})");
  EXPECT_FALSE(r.finished.empty());

  int64_t id2 = reg.create_run("dlm-data-constrained", "exp", "", "");
  EXPECT_EQ(reg.get_run(id2).config_json, "{}");
  auto runs = reg.list_runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].id, id2);  // newest first
  EXPECT_EQ(runs[1].id, id);
  EXPECT_EQ(reg.list_runs(1).size(), 1u);
  EXPECT_EQ(reg.list_runs(0).size(), 2u);
}

TEST(Registry, PersistsAcrossReopen) {
  TempDir tmp;
  std::string db_path = tmp / "lmlab.db";
  int64_t id;
  {
    RunRegistry reg = RunRegistry::open(db_path);
    id = reg.create_run("a", "train", "{}", "");
    for (int s = 0; s < 50; ++s) reg.log_metric(id, s, "loss", 1.0 / (s + 1));
    reg.finish_run(id, "interrupted", "");
  }
  RunRegistry again = RunRegistry::open(db_path);  // schema already current: no migration
  RunInfo r = again.get_run(id);
  EXPECT_EQ(r.status, "interrupted");
  auto s = again.metric_series(id, "loss");
  ASSERT_EQ(s.size(), 50u);
  EXPECT_DOUBLE_EQ(s[49].second, 1.0 / 50);
  // A moved handle keeps working; the moved-from one reports misuse instead of crashing.
  RunRegistry moved = std::move(again);
  EXPECT_EQ(moved.get_run(id).name, "a");
  EXPECT_THROW((void)again.path(), ValueError);  // NOLINT(bugprone-use-after-move): tested on purpose
}

TEST(Registry, TwoHandlesWritingAlternatelyLoseNothing) {
  TempDir tmp;
  std::string db_path = tmp / "lmlab.db";
  RunRegistry a = RunRegistry::open(db_path);
  RunRegistry b = RunRegistry::open(db_path);
  int64_t ra = a.create_run("a", "train", "", "");
  int64_t rb = b.create_run("b", "train", "", "");
  for (int s = 0; s < 100; ++s) {
    a.log_metrics(ra, s, {{"loss", s * 1.0}, {"acc", s * 0.01}});
    b.log_metric(rb, s, "loss", -s * 1.0);
    EXPECT_EQ(a.metric_series(rb, "loss").size(), size_t(s + 1));  // each sees the other's commits
  }
  EXPECT_EQ(b.metric_series(ra, "loss").size(), 100u);
  EXPECT_EQ(b.metric_series(ra, "acc").size(), 100u);
  EXPECT_EQ(a.list_runs().size(), 2u);
}

TEST(Registry, ConcurrentThreadsWithOwnHandlesAndAReader) {
  TempDir tmp;
  std::string db_path = tmp / "lmlab.db";
  RunRegistry::open(db_path);  // create the schema once
  constexpr int kSteps = 150;
  std::atomic<bool> writers_done{false};
  std::atomic<int> reads{0};
  std::vector<int64_t> ids(2);
  auto writer = [&](int w) {
    RunRegistry reg = RunRegistry::open(db_path);
    ids[w] = reg.create_run("w" + std::to_string(w), "train", "", "");
    for (int s = 0; s < kSteps; ++s) reg.log_metrics(ids[w], s, {{"loss", double(s)}, {"tokens", double(s * 64)}});
    reg.finish_run(ids[w], "done", "");
  };
  std::thread reader([&] {
    RunRegistry reg = RunRegistry::open(db_path);
    // At least one read even when the writers finish before this thread is scheduled.
    do {
      for (const RunInfo& r : reg.list_runs()) (void)reg.metric_series(r.id, "loss");
      ++reads;
    } while (!writers_done);
  });
  std::thread w0(writer, 0), w1(writer, 1);
  w0.join();
  w1.join();
  writers_done = true;
  reader.join();
  EXPECT_GT(reads.load(), 0);
  RunRegistry reg = RunRegistry::open(db_path);
  for (int64_t id : ids) {
    EXPECT_EQ(reg.get_run(id).status, "done");
    EXPECT_EQ(reg.metric_series(id, "loss").size(), size_t(kSteps));
    EXPECT_EQ(reg.metric_series(id, "tokens").size(), size_t(kSteps));
  }
}

TEST(Registry, OneHandleSharedByThreads) {
  TempDir tmp;
  RunRegistry reg = RunRegistry::open(tmp / "lmlab.db");
  int64_t id = reg.create_run("shared", "train", "", "");
  auto work = [&](int t) {
    for (int s = 0; s < 100; ++s) {
      reg.log_metric(id, s, "m" + std::to_string(t), s);
      (void)reg.metric_series(id, "m0");
    }
  };
  std::thread t0(work, 0), t1(work, 1);
  t0.join();
  t1.join();
  EXPECT_EQ(reg.metric_series(id, "m0").size(), 100u);
  EXPECT_EQ(reg.metric_series(id, "m1").size(), 100u);
}

TEST(Registry, ConcurrentProcessesLoseNothing) {
  TempDir tmp;
  std::string db_path = tmp / "lmlab.db";
  int64_t id = RunRegistry::open(db_path).create_run("shared", "train", "", "");
  constexpr int kSteps = 200;
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child writes even steps through its own connection; _exit skips gtest's teardown.
    int rc = 0;
    try {
      RunRegistry reg = RunRegistry::open(db_path);
      for (int s = 0; s < kSteps; s += 2) reg.log_metric(id, s, "loss", s);
    } catch (...) {
      rc = 1;
    }
    ::_exit(rc);
  }
  {
    RunRegistry reg = RunRegistry::open(db_path);
    for (int s = 1; s < kSteps; s += 2) reg.log_metric(id, s, "loss", s);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  auto series = RunRegistry::open(db_path).metric_series(id, "loss");
  ASSERT_EQ(series.size(), size_t(kSteps));
  for (int s = 0; s < kSteps; ++s) EXPECT_EQ(series[s].first, s);
}

TEST(Registry, CorruptFileIsAFormatErrorNamingIt) {
  TempDir tmp;
  std::string db_path = tmp / "garbage.db";
  std::mt19937 rng(7);
  std::string bytes(8192, '\0');
  for (char& c : bytes) c = char(rng());
  write_text(db_path, bytes);
  std::string msg;
  try {
    RunRegistry::open(db_path);
    ADD_FAILURE() << "opened a file of random bytes";
  } catch (const FormatError& e) {
    msg = e.what();
  } catch (const IoError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find(db_path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not a database"), std::string::npos) << msg;
  // Nothing was written over the user's file.
  std::ifstream f(db_path, std::ios::binary);
  std::string back((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(back, bytes);
}

TEST(Registry, ForeignOrNewerDatabasesAreRefused) {
  TempDir tmp;
  std::string other = tmp / "other.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE customers(id INTEGER)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  std::string msg = message_of<FormatError>([&] { RunRegistry::open(other); });
  EXPECT_NE(msg.find("not an lmlab registry"), std::string::npos) << msg;
  EXPECT_NE(msg.find(other), std::string::npos) << msg;

  std::string newer = tmp / "newer.db";
  RunRegistry::open(newer);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(newer.c_str(), &db), SQLITE_OK);
    std::string sql = "INSERT INTO schema_version VALUES(" + std::to_string(RunRegistry::schema_version() + 1) + ", 'x')";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  msg = message_of<FormatError>([&] { RunRegistry::open(newer); });
  EXPECT_NE(msg.find("newer than this build"), std::string::npos) << msg;

  std::string msg2 = message_of<IoError>([&] { RunRegistry::open(tmp.path.string()); });
  EXPECT_NE(msg2.find("is a directory"), std::string::npos) << msg2;
}

TEST(Registry, UnknownRunsAndBadArgumentsGiveClearErrors) {
  TempDir tmp;
  RunRegistry reg = RunRegistry::open(tmp / "lmlab.db");
  std::string msg = message_of<ValueError>([&] { reg.get_run(4242); });
  EXPECT_NE(msg.find("4242"), std::string::npos) << msg;
  EXPECT_NE(msg.find("lmlab.db"), std::string::npos) << msg;
  EXPECT_THROW(reg.log_metric(4242, 0, "loss", 1.0), ValueError);
  EXPECT_THROW(reg.add_artifact(4242, "plot", "x.svg"), ValueError);
  msg = message_of<ValueError>([&] { reg.finish_run(4242, "done", ""); });
  EXPECT_NE(msg.find("4242"), std::string::npos) << msg;

  int64_t id = reg.create_run("x", "train", "", "");
  msg = message_of<ValueError>([&] { reg.finish_run(id, "finished", ""); });
  EXPECT_NE(msg.find("\"finished\""), std::string::npos) << msg;
  msg = message_of<ValueError>([&] { reg.create_run("y", "train", "{lr: 1", ""); });
  EXPECT_NE(msg.find("config_json"), std::string::npos) << msg;
  EXPECT_THROW(reg.create_run("", "train", "", ""), ValueError);
  EXPECT_THROW(reg.create_run("y", "", "", ""), ValueError);
  EXPECT_THROW(reg.finish_run(id, "done", "not json"), ValueError);
  // A failed batch stores nothing (validation happens before the transaction).
  EXPECT_THROW(reg.log_metrics(id, 0, {{"loss", 1.0}, {"", 2.0}}), ValueError);
  EXPECT_TRUE(reg.metric_names(id).empty());
  EXPECT_EQ(reg.get_run(id).status, "running");
}

TEST(Registry, GitCommitOfThisRepository) {
  // The source tree holds the fixtures folder: LMLAB_FIXTURE_DIR = <repo>/tests/fixtures.
  fs::path repo = fs::path(LMLAB_FIXTURE_DIR).parent_path().parent_path();
  if (!fs::exists(repo / ".git")) GTEST_SKIP() << "source tree is not a git checkout";
  std::string head = current_git_commit(repo.string());
  EXPECT_TRUE(is_lower_hex40(head)) << "'" << head << "'";
  // From a subfolder, the repository is found upwards, as git does.
  EXPECT_EQ(current_git_commit((repo / "lmlab").string()), head);
}

TEST(Registry, GitCommitLayouts) {
  TempDir tmp;
  EXPECT_EQ(current_git_commit(tmp.path.string()), "");  // not a repository
  const std::string a(40, 'a'), b = "0123456789abcdef0123456789ABCDEF01234567";

  fs::path loose = tmp.path / "loose";
  write_text(loose / ".git/HEAD", "ref: refs/heads/main\n");
  write_text(loose / ".git/refs/heads/main", a + "\n");
  EXPECT_EQ(current_git_commit(loose.string()), a);

  fs::path packed = tmp.path / "packed";
  write_text(packed / ".git/HEAD", "ref: refs/heads/dev\n");
  write_text(packed / ".git/packed-refs",
             "# pack-refs with: peeled fully-peeled sorted\n" + a + " refs/heads/main\n" + b + " refs/heads/dev\n^" + a + "\n");
  EXPECT_EQ(current_git_commit(packed.string()), "0123456789abcdef0123456789abcdef01234567");

  fs::path detached = tmp.path / "detached";
  write_text(detached / ".git/HEAD", a + "\n");
  EXPECT_EQ(current_git_commit(detached.string()), a);

  fs::path unborn = tmp.path / "unborn";  // `git init` with no commit yet
  write_text(unborn / ".git/HEAD", "ref: refs/heads/main\n");
  EXPECT_EQ(current_git_commit(unborn.string()), "");

  // A linked worktree: .git is a file pointing at its gitdir, whose commondir holds the refs.
  fs::path wt = tmp.path / "wt";
  write_text(wt / ".git", "gitdir: ../loose/.git/worktrees/wt\n");
  write_text(loose / ".git/worktrees/wt/HEAD", "ref: refs/heads/main\n");
  write_text(loose / ".git/worktrees/wt/commondir", "../..\n");
  EXPECT_EQ(current_git_commit(wt.string()), a);
}
