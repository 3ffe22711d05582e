// The op-table runner: every registered case in ref and grad mode, plus the coverage check.
#include "tests/ops/op_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <set>

namespace lmlab::test {

Tolerance ref_tolerance(DType dt) {
  switch (dt) {
    case DType::F64: return {1e-10, 1e-9};
    case DType::F32: return {2e-5, 2e-4};
    case DType::BF16: return {2e-2, 2e-2};
    case DType::F16: return {2e-3, 2e-3};
    default: return {0, 0};
  }
}
Tolerance grad_tolerance() { return {1e-6, 1e-4}; }

std::vector<OpCase>& op_cases() {
  static std::vector<OpCase> cases;
  return cases;
}
Registrar::Registrar(std::vector<OpCase> cs) {
  for (auto& c : cs) op_cases().push_back(std::move(c));
}

Tensor randn(Generator& g, const Shape& s, DType dt, double scale, double shift) {
  Tensor t = Tensor::randn(s, g, DType::F64);
  Tensor o = Tensor::empty(s, dt);
  NoGrad ng;
  copy_into(o, add(mul(t, scale), shift));
  return o;
}
Tensor rand_pos(Generator& g, const Shape& s, DType dt, double lo, double hi) {
  Tensor t = Tensor::rand(s, g, DType::F64);
  Tensor o = Tensor::empty(s, dt);
  NoGrad ng;
  copy_into(o, add(mul(t, hi - lo), lo));
  return o;
}

namespace {

std::vector<bool> diff_mask(const OpCase& c, const std::vector<Tensor>& in) {
  if (!c.diff.empty()) return c.diff;
  std::vector<bool> m;
  for (auto& t : in) m.push_back(t.defined() && is_floating(t.dtype()));
  return m;
}

// Runs the case once: output plus gradients of sum(out * R) w.r.t. differentiable inputs.
struct CaseRun {
  Tensor out;
  std::vector<Tensor> grads;
};
CaseRun run_case(const OpCase& c, const std::vector<Tensor>& base, bool reference, uint64_t seed) {
  ReferenceMode rm(reference);
  std::vector<Tensor> in;
  auto mask = diff_mask(c, base);
  for (size_t i = 0; i < base.size(); ++i) {
    Tensor t = base[i].defined() ? base[i].detach().clone() : base[i];
    if (c.grad && mask[i]) t.set_requires_grad(true);
    in.push_back(t);
  }
  CaseRun r;
  r.out = c.fn(in);
  if (c.grad && r.out.requires_grad()) {
    Generator g(seed);
    Tensor R = Tensor::randn(r.out.shape(), g, DType::F64).to(r.out.dtype());
    sum(mul(r.out, R)).backward();
    for (size_t i = 0; i < in.size(); ++i) r.grads.push_back(mask[i] ? in[i].grad() : Tensor());
  }
  r.out = r.out.detach();
  return r;
}

class OpTable : public ::testing::TestWithParam<size_t> {};

TEST_P(OpTable, FastMatchesReference) {
  const OpCase& c = op_cases()[GetParam()];
  Generator g(1000 + GetParam());
  auto base = c.inputs(g, DType::F32);
  CaseRun fast = run_case(c, base, false, 99), ref = run_case(c, base, true, 99);
  Tolerance tol = ref_tolerance(fast.out.dtype());
  double atol = c.ref_atol >= 0 ? c.ref_atol : tol.atol, rtol = c.ref_rtol >= 0 ? c.ref_rtol : tol.rtol;
  auto r = compare(c.name + " output", fast.out, ref.out, atol, rtol);
  EXPECT_TRUE(r.ok) << r.message;
  ASSERT_EQ(fast.grads.size(), ref.grads.size());
  for (size_t i = 0; i < fast.grads.size(); ++i) {
    if (!fast.grads[i].defined() && !ref.grads[i].defined()) continue;
    auto rg = compare(c.name + " grad[" + std::to_string(i) + "]", fast.grads[i], ref.grads[i], atol, rtol);
    EXPECT_TRUE(rg.ok) << rg.message;
  }
  if (std::getenv("LMLAB_OP_PERF")) {
    auto time = [&](bool reference) {
      auto t0 = std::chrono::steady_clock::now();
      run_case(c, base, reference, 99);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    double tf = time(false), tr = time(true);
    std::printf("PERF %-60s fast %.3f ms  ref %.3f ms  speedup %.1fx\n", c.name.c_str(), tf * 1e3, tr * 1e3, tr / tf);
  }
}

TEST_P(OpTable, GradientCheck) {
  const OpCase& c = op_cases()[GetParam()];
  if (!c.grad) GTEST_SKIP() << c.name << " is not differentiable";
  Generator g(2000 + GetParam());
  auto base = c.inputs(g, DType::F64);
  GradcheckOptions o;
  Tolerance tol = grad_tolerance();
  o.atol = c.grad_atol >= 0 ? c.grad_atol : tol.atol;
  o.rtol = c.grad_rtol >= 0 ? c.grad_rtol : tol.rtol;
  if (c.eps > 0) o.eps = c.eps;
  o.four_point = c.four_point;
  o.max_elems = c.max_elems;
  o.check = diff_mask(c, base);
  auto r = gradcheck(c.fn, base, o);
  EXPECT_TRUE(r.ok) << c.name << ": " << r.message;
}

std::string case_name(const ::testing::TestParamInfo<size_t>& info) {
  std::string n = std::to_string(info.param) + "_" + op_cases()[info.param].name;
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

std::vector<size_t> all_indices() {
  std::vector<size_t> v(op_cases().size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::ValuesIn(all_indices()), case_name);

TEST(OpTableCoverage, EveryOpHasACase) {
  std::set<OpKind> seen;
  for (const auto& c : op_cases()) seen.insert(c.kind);
  for (size_t k = 0; k < size_t(OpKind::Count); ++k)
    EXPECT_TRUE(seen.count(OpKind(k))) << "op " << op_name(OpKind(k)) << " has no case in the op table";
}

TEST(OpTableCoverage, NamesAreUnique) {
  std::set<std::string> names;
  for (const auto& c : op_cases()) EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name " << c.name;
}

}  // namespace
}  // namespace lmlab::test
