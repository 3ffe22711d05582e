// The op table (STYLE 2.5, ggml test-backend-ops): one small struct per op case, run in three
// modes — `ref` (fast kernels vs `_ref` kernels, outputs and gradients, f32), `grad` (float64
// central differences through the fast kernels), `perf` (LMLAB_OP_PERF=1: times both).
// Families register their cases from their own file with LMLAB_OP_CASES.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "lmlab/lmlab.h"

namespace lmlab::test {

struct OpCase {
  OpKind kind;
  std::string name;  // unique, descriptive: shapes, layout, params
  // Builds the inputs at `dt` (f32 for ref mode, f64 for grad mode); integer inputs keep their dtype.
  std::function<std::vector<Tensor>(Generator&, DType dt)> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  std::vector<bool> diff;    // per input: differentiable? empty = every floating input
  bool grad = true;          // false for non-differentiable ops (argmax, sort indices, ...)
  // Overrides; negative = use the per-dtype default from tolerances().
  double ref_atol = -1, ref_rtol = -1, grad_atol = -1, grad_rtol = -1, eps = -1;
  bool four_point = false;
  int64_t max_elems = 48;
};

struct Tolerance {
  double atol, rtol;
};
// The one per-dtype tolerance table: fast-vs-reference comparisons and gradchecks.
Tolerance ref_tolerance(DType dt);
Tolerance grad_tolerance();

std::vector<OpCase>& op_cases();
struct Registrar {
  explicit Registrar(std::vector<OpCase> cs);
};

// Random inputs helpers.
Tensor randn(Generator& g, const Shape& s, DType dt, double scale = 1.0, double shift = 0.0);
Tensor rand_pos(Generator& g, const Shape& s, DType dt, double lo = 0.5, double hi = 2.0);

}  // namespace lmlab::test

#define LMLAB_OP_CASES_CAT2(a, b) a##b
#define LMLAB_OP_CASES_CAT(a, b) LMLAB_OP_CASES_CAT2(a, b)
#define LMLAB_OP_CASES(...) \
  static ::lmlab::test::Registrar LMLAB_OP_CASES_CAT(lmlab_op_cases_, __LINE__)(__VA_ARGS__)
