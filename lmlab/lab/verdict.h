// Verdicts that follow from the data. A claim is decided per seed by a margin: > 0 when the claim
// held in that seed, < 0 when its opposite held, NaN when that seed could not test it (a diverged
// run, a missing variant). Over the seeds:
//   held          every seed's margin is > 0, or the mean margin exceeds its spread (mean - sd > 0);
//   did not hold  every seed's margin is < 0, or mean + sd < 0;
//   mixed         otherwise (the seeds disagree within the spread, or a margin is exactly 0);
//   not tested    no seed could test it.
// A report states each claim with the rule that decides it (the margin's definition) and the figures.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmlab/lab/seeds.h"

namespace lmlab {

class Report;

enum class Verdict { Held, DidNotHold, Mixed, NotTested };
const char* verdict_name(Verdict v);  // "held" | "did not hold" | "mixed" | "not tested"
Verdict verdict_of(const std::vector<double>& margins);

struct Claim {
  std::string group;   // e.g. the task ("" when the experiment has one)
  std::string claim;   // the paper's or spec's words
  std::string rule;    // what decides it here: the margin's definition and thresholds
  std::string ours;    // the figures, as mean ± spread
  std::vector<double> margins;  // per seed
  Verdict verdict = Verdict::NotTested;
  std::string note;    // e.g. "fixed by the layer pattern", "GLA diverged in seed 2"
};

// A claim decided by its margins (verdict_of).
Claim decide(std::string group, std::string claim, std::string rule, std::string ours, std::vector<double> margins,
             std::string note = "");
// A claim this experiment does not test (it is listed so the report is complete).
Claim not_tested(std::string group, std::string claim, std::string ours, std::string why);

// The margin function applied to every seed's measurements.
std::vector<double> per_seed(const Measured& m, const std::function<double(const Measurements&)>& margin);

// The claims as a report table (group column only when some claim has one) and as JSON.
void add_claims(Report& rep, const std::vector<Claim>& claims, const std::string& claim_header = "claim");
nlohmann::ordered_json claims_json(const std::vector<Claim>& claims);

}  // namespace lmlab
