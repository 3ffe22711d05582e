// Experiments are data: experiments/<name>.json names a kind (the code that runs it), a description,
// the paper's claim, and per-scale settings (tiny | demo | small | full). `lmlab exp run NAME` loads
// the file and hands it to its kind, which writes results.json, report.md, report.html and SVG plots.
// The kinds live in lmlab/experiments/ (one file each) and register themselves here by name.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lmlab {

struct ExperimentContext {
  std::string name, scale;
  nlohmann::json spec;        // the whole experiments/<name>.json
  nlohmann::json settings;    // spec["scales"][scale]
  std::string out_dir;        // "" = the experiment picks (runs/<training run id>)
  double minutes = 0;         // > 0 overrides the scale's training time budget
  uint64_t seed = 0;          // > 0 overrides the spec's seed (the first of the seeds)
  int seeds = 1;              // the experiment is repeated with seeds seed, seed + 1, ..., seed + seeds - 1
  std::string registry_path = "runs/lmlab.db";
  std::string runs_dir = "runs";
  std::function<void(const std::string&)> log, progress;
};

struct ExperimentResult {
  std::string out_dir, report_html, report_md, results_json;
  std::vector<std::string> highlights;  // a few lines worth printing (headline numbers, samples)
};

struct ExperimentInfo {
  std::string name, kind, description;
  std::vector<std::string> scales;
};

// experiments/ beside the sources (LMLAB_EXPERIMENTS_DIR overrides).
std::string experiments_dir();
std::vector<ExperimentInfo> list_experiments(const std::string& dir = "");
ExperimentResult run_experiment(const std::string& name, ExperimentContext ctx, const std::string& dir = "");

// A kind: the code that runs experiments/<name>.json files whose "kind" is its name. Kinds register
// from a static initialiser in their own file (lmlab/experiments/*.cpp):
//   const bool registered = register_experiment_kind("moe", &run_moe);
using ExperimentKind = ExperimentResult (*)(ExperimentContext&);
bool register_experiment_kind(const std::string& kind, ExperimentKind run);
std::vector<std::string> experiment_kinds();

}  // namespace lmlab
