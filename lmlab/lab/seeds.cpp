// Seeds and spreads.
#include "lmlab/lab/seeds.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "lmlab/core/error.h"

namespace lmlab {

double Measurements::get(const std::string& figure) const {
  auto it = figures.find(figure);
  return it == figures.end() ? NAN : it->second;
}

Spread spread_of(const std::vector<double>& values) {
  Spread s;
  double sum = 0;
  for (double v : values) {
    if (!std::isfinite(v)) {
      ++s.missing;
      continue;
    }
    if (s.n == 0) s.min = s.max = v;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
    sum += v;
    ++s.n;
  }
  if (s.n == 0) {
    s.mean = s.sd = s.min = s.max = NAN;
    return s;
  }
  s.mean = sum / s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double v : values)
      if (std::isfinite(v)) ss += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

std::string format_spread(const Spread& s, int precision) {
  if (s.n == 0) return "n/a";
  char buf[96];
  if (s.n == 1) std::snprintf(buf, sizeof buf, "%.*f", precision, s.mean);
  else std::snprintf(buf, sizeof buf, "%.*f ± %.*f", precision, s.mean, precision, s.sd);
  std::string out = buf;
  if (s.missing > 0) out += str_cat(" (", s.missing, " of ", s.n + s.missing, " seeds n/a)");
  return out;
}

std::vector<double> Measured::values(const std::string& figure) const {
  std::vector<double> v;
  for (const auto& m : seeds) v.push_back(m.get(figure));
  return v;
}

bool Measured::has(const std::string& figure) const {
  for (const auto& m : seeds)
    if (m.figures.count(figure)) return true;
  return false;
}

std::vector<uint64_t> Measured::seed_list() const {
  std::vector<uint64_t> v;
  for (const auto& m : seeds) v.push_back(m.seed);
  return v;
}

Series Measured::curve(const std::string& name, const std::string& label) const {
  Series out{label, {}, {}, {}, {}};
  std::vector<const Measurements::Curve*> cs;
  for (const auto& m : seeds) {
    auto it = m.curves.find(name);
    if (it != m.curves.end()) cs.push_back(&it->second);
  }
  if (cs.empty()) return out;
  size_t n = cs[0]->x.size();
  for (const auto* c : cs) {
    size_t k = 0;
    while (k < std::min(n, c->x.size()) && c->x[k] == cs[0]->x[k]) ++k;
    n = k;
  }
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> ys;
    for (const auto* c : cs) ys.push_back(c->y[i]);
    Spread s = spread_of(ys);
    out.x.push_back(cs[0]->x[i]);
    out.y.push_back(s.mean);
    if (cs.size() > 1) {
      out.lo.push_back(s.min);
      out.hi.push_back(s.max);
    }
  }
  return out;
}

}  // namespace lmlab
