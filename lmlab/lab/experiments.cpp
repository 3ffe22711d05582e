// Experiment registry: experiment files -> kinds.
#include "lmlab/lab/experiments.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "lmlab/core/error.h"
#include "lmlab/train/checkpoint.h"

namespace fs = std::filesystem;

namespace lmlab {

namespace {
std::map<std::string, ExperimentKind>& kinds() {
  static std::map<std::string, ExperimentKind> k;
  return k;
}

nlohmann::json load_spec(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[exp] '", path, "' is not valid JSON: ", e.what()));
  }
  LMLAB_CHECK(j.is_object(), ConfigError, "[exp] '", path, "' must be a JSON object, got ", j.type_name());
  for (const char* k : {"kind", "description", "claim", "paper"})
    LMLAB_CHECK(!j.contains(k) || j[k].is_string(), ConfigError, "[exp] '", path, "' field '", k,
                "' must be a string, got ", j[k].dump());
  LMLAB_CHECK(!j.contains("scales") || j["scales"].is_object(), ConfigError, "[exp] '", path,
              "' field 'scales' must be an object of scale name -> settings");
  if (j.contains("scales"))
    for (auto it = j["scales"].begin(); it != j["scales"].end(); ++it)
      LMLAB_CHECK(it.value().is_object(), ConfigError, "[exp] '", path, "' scale '", it.key(),
                  "' must be an object of settings");
  return j;
}
}  // namespace

bool register_experiment_kind(const std::string& kind, ExperimentKind run) {
  LMLAB_CHECK(!kinds().count(kind), ValueError, "[exp] experiment kind '", kind, "' registered twice");
  kinds()[kind] = run;
  return true;
}

std::vector<std::string> experiment_kinds() {
  std::vector<std::string> v;
  for (const auto& [k, f] : kinds()) v.push_back(k);
  return v;
}

std::string experiments_dir() {
  if (const char* d = std::getenv("LMLAB_EXPERIMENTS_DIR")) return d;
#ifdef LMLAB_SOURCE_DIR
  return std::string(LMLAB_SOURCE_DIR) + "/experiments";
#else
  return "experiments";
#endif
}

std::vector<ExperimentInfo> list_experiments(const std::string& dir_in) {
  std::string dir = dir_in.empty() ? experiments_dir() : dir_in;
  std::vector<ExperimentInfo> out;
  LMLAB_CHECK(fs::exists(dir), IoError, "[exp] no experiments folder at '", dir, "'");
  for (auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    nlohmann::json j = load_spec(e.path().string());
    if (!j.contains("kind")) continue;  // plain configs (e.g. train configs) live here too
    ExperimentInfo i;
    i.name = e.path().stem().string();
    i.kind = j.value("kind", "");
    i.description = j.value("description", "");
    if (j.contains("scales") && j["scales"].is_object())
      for (auto it = j["scales"].begin(); it != j["scales"].end(); ++it) i.scales.push_back(it.key());
    out.push_back(i);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

ExperimentResult run_experiment(const std::string& name, ExperimentContext ctx, const std::string& dir_in) {
  std::string dir = dir_in.empty() ? experiments_dir() : dir_in;
  std::string path = dir + "/" + name + ".json";
  if (!fs::exists(path)) {
    std::string known;
    if (fs::exists(dir))
      for (auto& i : list_experiments(dir)) known += (known.empty() ? "" : ", ") + i.name;
    throw ConfigError(str_cat("[exp] unknown experiment '", name, "' (no ", path, "; known: ", known, ")"));
  }
  ctx.name = name;
  ctx.spec = load_spec(path);
  std::string kind = ctx.spec.value("kind", "");
  auto it = kinds().find(kind);
  if (it == kinds().end()) {
    std::string known;
    for (const auto& k : experiment_kinds()) known += (known.empty() ? "" : ", ") + k;
    throw ConfigError(str_cat("[exp] '", path, "' has unknown kind '", kind, "' (known: ", known, ")"));
  }
  LMLAB_CHECK(ctx.seeds >= 1 && ctx.seeds <= 1000, ConfigError, "[exp] --seeds must be 1..1000, got ", ctx.seeds);
  LMLAB_CHECK(ctx.spec.contains("scales") && ctx.spec["scales"].contains(ctx.scale), ConfigError, "[exp] '", path,
              "' has no scale '", ctx.scale, "'");
  ctx.settings = ctx.spec["scales"][ctx.scale];
  return it->second(ctx);
}

}  // namespace lmlab
