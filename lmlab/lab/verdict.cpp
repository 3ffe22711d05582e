// Verdicts from per-seed margins.
#include "lmlab/lab/verdict.h"

#include <cmath>

#include "lmlab/core/error.h"
#include "lmlab/lab/report.h"

namespace lmlab {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Held: return "held";
    case Verdict::DidNotHold: return "did not hold";
    case Verdict::Mixed: return "mixed";
    case Verdict::NotTested: return "not tested";
  }
  return "?";
}

Verdict verdict_of(const std::vector<double>& margins) {
  Spread s = spread_of(margins);
  if (s.n == 0) return Verdict::NotTested;
  if (s.min > 0) return Verdict::Held;
  if (s.max < 0) return Verdict::DidNotHold;
  if (s.n > 1 && s.mean - s.sd > 0) return Verdict::Held;
  if (s.n > 1 && s.mean + s.sd < 0) return Verdict::DidNotHold;
  return Verdict::Mixed;
}

Claim decide(std::string group, std::string claim, std::string rule, std::string ours, std::vector<double> margins,
             std::string note) {
  Claim c{std::move(group), std::move(claim), std::move(rule), std::move(ours), std::move(margins),
          Verdict::NotTested, std::move(note)};
  c.verdict = verdict_of(c.margins);
  return c;
}

Claim not_tested(std::string group, std::string claim, std::string ours, std::string why) {
  return Claim{std::move(group), std::move(claim), "", std::move(ours), {}, Verdict::NotTested, std::move(why)};
}

std::vector<double> per_seed(const Measured& m, const std::function<double(const Measurements&)>& margin) {
  std::vector<double> v;
  for (const auto& s : m.seeds) v.push_back(margin(s));
  return v;
}

void add_claims(Report& rep, const std::vector<Claim>& claims, const std::string& claim_header) {
  bool groups = false;
  for (const auto& c : claims) groups = groups || !c.group.empty();
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : claims) {
    std::vector<std::string> row;
    if (groups) row.push_back(c.group);
    std::string margins;
    for (double m : c.margins) margins += (margins.empty() ? "" : ", ") + (std::isfinite(m) ? str_cat(std::round(m * 1e4) / 1e4) : std::string("n/a"));
    row.insert(row.end(), {c.claim, c.rule, c.ours, margins.empty() ? "-" : margins,
                           std::string(verdict_name(c.verdict)) + (c.note.empty() ? "" : " (" + c.note + ")")});
    rows.push_back(row);
  }
  std::vector<std::string> hdr;
  if (groups) hdr.push_back("task");
  hdr.insert(hdr.end(), {claim_header, "rule (margin > 0: the claim held)", "ours", "margin per seed", "verdict"});
  rep.add_table(hdr, rows);
}

nlohmann::ordered_json claims_json(const std::vector<Claim>& claims) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& c : claims) {
    nlohmann::ordered_json j;
    if (!c.group.empty()) j["group"] = c.group;
    j["claim"] = c.claim;
    j["rule"] = c.rule;
    j["ours"] = c.ours;
    j["margins"] = nlohmann::ordered_json::array();
    for (double m : c.margins) j["margins"].push_back(std::isfinite(m) ? nlohmann::ordered_json(m) : nlohmann::ordered_json());
    j["verdict"] = verdict_name(c.verdict);
    if (!c.note.empty()) j["note"] = c.note;
    a.push_back(j);
  }
  return a;
}

}  // namespace lmlab
