// Seeds and spreads: an experiment repeated over N seeds measures the same named figures (numbers)
// and curves once per seed; every figure is then reported as its mean and spread over the seeds,
// and every curve as its mean with a band from the lowest to the highest seed.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lmlab/lab/plot.h"

namespace lmlab {

// What one seed measured: named figures ("mqar/kda/final_acc") and curves (x, y).
struct Measurements {
  uint64_t seed = 0;
  std::map<std::string, double> figures;
  struct Curve {
    std::vector<double> x, y;
  };
  std::map<std::string, Curve> curves;
  double get(const std::string& figure) const;  // NaN when absent
};

// Mean, sample standard deviation (0 for one value), lowest and highest of the finite values.
struct Spread {
  double mean = 0, sd = 0, min = 0, max = 0;
  int n = 0;        // finite values
  int missing = 0;  // non-finite or absent values
};
Spread spread_of(const std::vector<double>& values);

// "0.812" for one seed, "0.812 ± 0.034" (mean ± sd) for several; "n/a" when no seed has the figure;
// missing seeds are counted ("0.81 ± 0.03, 1 of 3 seeds n/a").
std::string format_spread(const Spread& s, int precision);

// Every seed's measurements of one experiment.
struct Measured {
  std::vector<Measurements> seeds;  // in seed order

  // figure's value per seed (NaN where a seed lacks it)
  std::vector<double> values(const std::string& figure) const;
  Spread spread(const std::string& figure) const { return spread_of(values(figure)); }
  std::string show(const std::string& figure, int precision) const { return format_spread(spread(figure), precision); }
  bool has(const std::string& figure) const;
  // The curve's mean over seeds at the x values every seed has (the shortest common prefix), with a
  // band from the lowest to the highest seed when there are several.
  Series curve(const std::string& name, const std::string& label) const;
  std::vector<uint64_t> seed_list() const;
};

}  // namespace lmlab
