// Exact resume: a run killed with SIGKILL mid-way and resumed from its last checkpoint produces
// bit-identical losses to an uninterrupted run; a stop request (SIGINT in the CLI) checkpoints and
// returns cleanly; corrupt checkpoints and configs give clear errors. The killed run is a child
// process: this test binary re-executes itself in "child mode" (LMLAB_RESUME_CHILD set).
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "lmlab/data/token_shard.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "lmlab/train/checkpoint.h"
#include "lmlab/train/trainer.h"

extern char** environ;
using namespace lmlab;
namespace fs = std::filesystem;

namespace {

TrainConfig small_config(const std::string& dir) {
  TrainConfig c;
  c.model.vocab_size = 97;
  c.model.hidden_size = 32;
  c.model.intermediate_size = 64;
  c.model.num_hidden_layers = 2;
  c.model.num_attention_heads = 4;
  c.model.num_key_value_heads = 2;
  c.model.max_position_embeddings = 32;
  c.train_data = dir + "/train.tok";
  c.val_data = dir + "/train.tok";
  c.batch_size = 4;
  c.context = 32;
  c.steps = 24;
  c.warmup = 4;
  c.lr = 3e-3;
  c.eval_every = 0;
  c.ckpt_every = 5;
  c.keep_last = 2;
  c.grad_accum = 2;
  c.out_dir = dir + "/run";
  return c;
}

void make_data(const std::string& dir) {
  fs::create_directories(dir);
  std::vector<uint32_t> ids(20000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint32_t((i * i + 7 * i) % 97);  // learnable structure
  write_token_shard(dir + "/train.tok", ids, 97);
}

std::vector<double> read_losses(const std::string& path) {
  std::vector<double> v;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) v.push_back(std::strtod(line.c_str(), nullptr));  // hex floats: exact
  return v;
}

}  // namespace

// Child mode: trains from scratch (or resumes), appending each step's loss (hex float, exact) to
// losses.txt; SIGKILLs itself after step LMLAB_KILL_AT.
TEST(ResumeChild, TrainAndDie) {
  const char* dir = std::getenv("LMLAB_RESUME_CHILD");
  if (!dir) GTEST_SKIP() << "only runs as the child of Resume.KilledRunResumesBitIdentically";
  int kill_at = std::atoi(std::getenv("LMLAB_KILL_AT"));
  Trainer tr(small_config(dir));
  tr.resume();
  std::FILE* f = std::fopen((std::string(dir) + "/losses.txt").c_str(), "a");
  tr.on_step = [&](const StepInfo& s) {
    std::fprintf(f, "%a\n", tr.losses().back());
    std::fflush(f);
    if (s.step == kill_at) raise(SIGKILL);
  };
  tr.run();
  std::fclose(f);
}

TEST(Resume, KilledRunResumesBitIdentically) {
  std::string base = (fs::temp_directory_path() / ("lmlab_resume_" + std::to_string(getpid()))).string();
  fs::remove_all(base);
  std::string ref_dir = base + "/ref", kill_dir = base + "/kill";
  make_data(ref_dir);
  make_data(kill_dir);
  // Uninterrupted reference, in this process.
  std::vector<double> ref;
  {
    Trainer tr(small_config(ref_dir));
    tr.run();
    ref = tr.losses();
  }
  ASSERT_EQ(ref.size(), 24u);
  // Child killed at step 13 (last complete checkpoint: step 10), then resumed in a second child.
  auto run_child = [&](int kill_at) {
    std::string self = fs::read_symlink("/proc/self/exe").string();
    std::string filter = "--gtest_filter=ResumeChild.TrainAndDie";
    char* argv[] = {self.data(), filter.data(), nullptr};
    std::vector<std::string> env_s = {"LMLAB_RESUME_CHILD=" + kill_dir, "LMLAB_KILL_AT=" + std::to_string(kill_at)};
    for (char** e = environ; *e; ++e) env_s.push_back(*e);
    std::vector<char*> env;
    for (auto& s : env_s) env.push_back(s.data());
    env.push_back(nullptr);
    pid_t pid;
    EXPECT_EQ(posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv, env.data()), 0);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
  };
  int st = run_child(13);
  ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "child was expected to die by SIGKILL";
  EXPECT_EQ(latest_checkpoint(kill_dir + "/run/checkpoints"), kill_dir + "/run/checkpoints/step-00000010");
  // A half-written checkpoint left by a killed writer is ignored and cleaned up.
  fs::create_directories(kill_dir + "/run/checkpoints/step-00000015.partial");
  st = run_child(-1);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_FALSE(fs::exists(kill_dir + "/run/checkpoints/step-00000015.partial"));
  std::vector<double> got = read_losses(kill_dir + "/losses.txt");
  // steps 1..13 from the first child, 11..24 from the resumed one
  ASSERT_EQ(got.size(), 13u + 14u);
  for (size_t i = 0; i < 13; ++i) EXPECT_EQ(got[i], ref[i]) << "step " << i + 1;
  for (size_t i = 0; i < 14; ++i) EXPECT_EQ(got[13 + i], ref[10 + i]) << "resumed step " << 11 + i;
  fs::remove_all(base);
}

TEST(Resume, StopRequestCheckpointsAndReturns) {
  std::string dir = (fs::temp_directory_path() / ("lmlab_stop_" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  make_data(dir);
  TrainConfig c = small_config(dir);
  c.ckpt_every = 0;
  Trainer tr(c);
  tr.on_step = [](const StepInfo& s) {
    if (s.step == 7) Trainer::request_stop();
  };
  EXPECT_FALSE(tr.run());
  Trainer::clear_stop();
  EXPECT_EQ(tr.step(), 7);
  EXPECT_EQ(latest_checkpoint(c.out_dir + "/checkpoints"), c.out_dir + "/checkpoints/step-00000007");
  for (const char* f : {"config.json", "model.safetensors", "optimizer.safetensors", "lmlab.json"})
    EXPECT_TRUE(fs::exists(c.out_dir + "/checkpoints/step-00000007/" + f)) << f;
  fs::remove_all(dir);
}

// The tokenizer is not part of the train config that a resume rebuilds from the run registry: the
// resumed trainer takes it from the checkpoint, so the checkpoints written after a resume are complete.
TEST(Resume, ResumedCheckpointsKeepTheTokenizer) {
  std::string dir = (fs::temp_directory_path() / ("lmlab_resume_tok_" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  make_data(dir);
  TrainConfig c = small_config(dir);
  c.steps = 10;
  c.ckpt_every = 0;
  c.tokenizer_json = R"({"version": "1.0", "model": {"type": "BPE"}})";
  {
    Trainer tr(c);
    tr.on_step = [](const StepInfo& s) {
      if (s.step == 5) Trainer::request_stop();
    };
    EXPECT_FALSE(tr.run());
    Trainer::clear_stop();
  }
  TrainConfig again = TrainConfig::from_json(c.to_json());  // what `lmlab train --resume` rebuilds
  EXPECT_TRUE(again.tokenizer_json.empty());
  Trainer tr(again);
  ASSERT_TRUE(tr.resume());
  EXPECT_TRUE(tr.run());
  std::string ck = c.out_dir + "/checkpoints/step-00000010";
  ASSERT_EQ(latest_checkpoint(c.out_dir + "/checkpoints"), ck);
  EXPECT_EQ(read_text_file(ck + "/tokenizer.json"), c.tokenizer_json);
  fs::remove_all(dir);
}

// A time budget is a deadline: with a step maximum far out of reach the run stops on the clock after
// the step in progress, evaluates once more and checkpoints; the first step's ETA is the budget's.
TEST(TimeBudget, StopsOnTheClock) {
  std::string dir = (fs::temp_directory_path() / ("lmlab_budget_" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  make_data(dir);
  TrainConfig c = small_config(dir);
  c.steps = 1000000;
  c.ckpt_every = 0;
  c.eval_every = 1000000;
  c.eval_batches = 2;
  c.time_budget_s = 0.5;
  Trainer tr(c);
  std::vector<StepInfo> seen;
  std::vector<EvalInfo> evals;
  tr.on_step = [&](const StepInfo& s) { seen.push_back(s); };
  tr.on_eval = [&](const EvalInfo& e) { evals.push_back(e); };
  EXPECT_TRUE(tr.run());
  EXPECT_TRUE(tr.stopped_on_clock());
  ASSERT_FALSE(seen.empty());
  EXPECT_LE(seen.front().eta_s, 0.5);
  EXPECT_LT(seen.front().total_steps, c.steps) << "the first progress line shows the budget's estimate";
  EXPECT_LT(tr.step(), c.steps);
  EXPECT_EQ(seen.back().step, tr.step());
  EXPECT_EQ(seen.back().total_steps, tr.step());
  EXPECT_GE(tr.elapsed_s(), 0.5);
  // one step past the deadline at most: the last step started before it
  double step_s = tr.elapsed_s() / double(tr.step());
  EXPECT_LT(tr.elapsed_s(), 0.5 + 20 * step_s + 2.0);
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0].step, tr.step());
  EXPECT_EQ(latest_checkpoint(c.out_dir + "/checkpoints"),
            c.out_dir + "/checkpoints/step-" + std::string(8 - std::to_string(tr.step()).size(), '0') + std::to_string(tr.step()));
  fs::remove_all(dir);
}

TEST(Resume, CorruptCheckpointIsAClearError) {
  std::string dir = (fs::temp_directory_path() / ("lmlab_corrupt_" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  make_data(dir);
  TrainConfig c = small_config(dir);
  c.steps = 5;
  c.ckpt_every = 0;
  {
    Trainer tr(c);
    tr.run();
  }
  std::string ck = c.out_dir + "/checkpoints/step-00000005";
  fs::resize_file(ck + "/model.safetensors", fs::file_size(ck + "/model.safetensors") / 2);
  Trainer tr2(c);
  try {
    tr2.resume();
    FAIL() << "truncated checkpoint accepted";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  {
    std::ofstream(ck + "/lmlab.json") << "{broken";
  }
  EXPECT_THROW(Trainer(c).resume(), FormatError);
  fs::remove_all(dir);
}

TEST(TrainConfig, Validation) {
  EXPECT_THROW(TrainConfig::from_json(R"({"steps": 10})"), ConfigError);  // no train_data
  EXPECT_THROW(TrainConfig::from_json(R"({"train_data": "x", "batch_size": 0})"), ConfigError);
  EXPECT_THROW(TrainConfig::from_json(R"({"train_data": "x", "learning_rate": 0.1})"), ConfigError);  // unknown
  EXPECT_THROW(TrainConfig::from_json(R"({"train_data": "x", "lr": "fast"})"), ConfigError);
  EXPECT_THROW(TrainConfig::from_json(R"({"train_data": "x", "precision": "fp8"})"), ConfigError);
  EXPECT_THROW(TrainConfig::from_json(R"({"train_data": "x", "context": 100000})"), ConfigError);
  TrainConfig ok = TrainConfig::from_json(R"({"train_data": "x", "steps": 7})");
  EXPECT_EQ(TrainConfig::from_json(ok.to_json()).steps, 7);
}

// bf16 mixed precision trains like f32: over 40 steps on structured data the loss curves agree
// within the spread that a different seed for the data order produces.
TEST(MixedPrecision, Bf16LossTracksF32) {
  std::string dir = (fs::temp_directory_path() / ("lmlab_bf16_" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  make_data(dir);
  auto run = [&](const std::string& prec, uint64_t seed) {
    TrainConfig c = small_config(dir);
    c.steps = 40;
    c.ckpt_every = 0;
    c.precision = prec;
    c.seed = seed;
    c.out_dir = dir + "/" + prec + std::to_string(seed);
    Trainer tr(c);
    tr.run();
    const auto& l = tr.losses();
    double tail = 0;
    for (size_t i = l.size() - 10; i < l.size(); ++i) tail += l[i];
    return std::make_pair(l.front(), tail / 10);
  };
  auto f32 = run("f32", 1), bf16 = run("bf16", 1), f32b = run("f32", 2);
  EXPECT_LT(f32.second, f32.first - 1.0);    // it learns
  EXPECT_LT(bf16.second, bf16.first - 1.0);
  double noise = std::abs(f32.second - f32b.second) + 0.05;
  EXPECT_LT(std::abs(bf16.second - f32.second), 3 * noise)
      << "f32 " << f32.second << " bf16 " << bf16.second << " f32(seed 2) " << f32b.second;
  fs::remove_all(dir);
}
