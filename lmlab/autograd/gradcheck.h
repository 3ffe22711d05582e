// Gradient checking and tensor comparison, usable by any test (STYLE 2.5).
// gradcheck: float64 central differences of sum(f(x) * R) for a fixed random projection R
// (a plain sum would hide bugs in softmax/norm gradients, whose outputs sum to a constant).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lmlab/core/tensor.h"

namespace lmlab {

struct GradcheckOptions {
  double eps = 1e-6;         // finite-difference step
  double atol = 1e-6;        // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-4;
  bool four_point = false;   // 4-point stencil (O(eps^4)) instead of 2-point
  int64_t max_elems = 64;    // per input; elements are sampled evenly when larger
  uint64_t seed = 1234;      // projection seed
  std::vector<bool> check;   // per input: false skips it (non-differentiable args); empty = all floating
};

struct CheckResult {
  bool ok = true;
  std::string message;  // names the input / tensor, worst index, values
  double max_abs = 0, nrmse = 0;
};

// `f` maps the inputs to one output. Floating inputs are converted to f64 leaves.
CheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, const std::vector<Tensor>& inputs,
                      const GradcheckOptions& opt = {});

// Compares `actual` to `expected` elementwise: max-abs difference, normalised RMS error
// (rms(a-e)/rms(e)), NaN/Inf and shape checks; the message lists the worst index and the first values.
CheckResult compare(const std::string& name, const Tensor& actual, const Tensor& expected, double atol, double rtol);

}  // namespace lmlab
