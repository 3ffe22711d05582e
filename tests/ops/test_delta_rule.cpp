// The gated delta rule family (ops/delta_rule/): f64 finite-difference gradchecks of the reference
// recurrence for every input; chunked == recurrent for outputs, final states and every gradient
// over chunk sizes, lengths not a multiple of the chunk, gates near 0 and very negative, scalar /
// channel / no gates, initial states, f64 and f32 (fla tests/ops/test_delta.py); the step kernel
// against the recurrence token by token; Auto dispatch; reductions to (gated) linear attention.
#include <cmath>
#include <vector>

#include "lmlab/lmlab.h"
#include "lmlab/ops/delta_rule/delta_rule.h"
#include "tests/test_util.h"

namespace lmlab::test {
namespace {

using Impl = DeltaRuleOptions::Impl;
enum class Gate { None, Scalar, Channel };

struct Spec {
  int64_t B = 1, T = 5, H = 2, dk = 4, dv = 3;
  Gate gate = Gate::Channel;
  double g_lo = 0.05, g_hi = 1.0;  // g = -U(g_lo, g_hi): log-space decay per step
  bool h0 = true;
};

Tensor make(const std::vector<double>& v, const Shape& s, DType dt) { return Tensor::from_vector(v, s).to(dt); }

// Inputs as the KDA layer makes them: q, k L2-normalised per head, v ~ N(0, 1), beta in (0, 1),
// g <= 0 drawn uniformly from [-g_hi, -g_lo]. Returns {q, k, v, g, beta, h0} (g / h0 may be undefined).
std::vector<Tensor> make_inputs(const Spec& s, uint64_t seed, DType dt) {
  Generator gen(seed);
  auto normal = [&](const Shape& sh) { return Tensor::randn(sh, gen, DType::F64).to_vector<double>(); };
  auto uniform = [&](const Shape& sh, double lo, double hi) {
    auto u = Tensor::rand(sh, gen, DType::F64).to_vector<double>();
    for (auto& x : u) x = lo + (hi - lo) * x;
    return u;
  };
  const Shape qs = {s.B, s.T, s.H, s.dk};
  auto l2 = [&](std::vector<double> x) {
    for (size_t r = 0; r < x.size(); r += size_t(s.dk)) {
      double n = 0;
      for (int64_t c = 0; c < s.dk; ++c) n += x[r + size_t(c)] * x[r + size_t(c)];
      for (int64_t c = 0; c < s.dk; ++c) x[r + size_t(c)] /= std::sqrt(n) + 1e-12;
    }
    return x;
  };
  std::vector<Tensor> in(6);
  in[0] = make(l2(normal(qs)), qs, dt);
  in[1] = make(l2(normal(qs)), qs, dt);
  in[2] = make(normal({s.B, s.T, s.H, s.dv}), {s.B, s.T, s.H, s.dv}, dt);
  if (s.gate == Gate::Channel) in[3] = make(uniform(qs, -s.g_hi, -s.g_lo), qs, dt);
  if (s.gate == Gate::Scalar) in[3] = make(uniform({s.B, s.T, s.H}, -s.g_hi, -s.g_lo), {s.B, s.T, s.H}, dt);
  in[4] = make(uniform({s.B, s.T, s.H}, 0.05, 0.95), {s.B, s.T, s.H}, dt);
  if (s.h0) in[5] = make(normal({s.B, s.H, s.dk, s.dv}), {s.B, s.H, s.dk, s.dv}, dt);
  return in;
}

DeltaRuleResult call(const std::vector<Tensor>& in, Impl impl, int64_t chunk = 64) {
  DeltaRuleOptions o;
  o.impl = impl;
  o.chunk_size = chunk;
  return gated_delta_rule(in[0], in[1], in[2], in[3], in[4], in[5], o);
}

// Outputs, final state and the gradients of sum(o Ro) + sum(hT Rh) w.r.t. every defined input.
struct RunOut {
  Tensor o, hT;
  std::vector<Tensor> grads;
};
RunOut run_grads(const std::vector<Tensor>& base, Impl impl, int64_t chunk = 64) {
  std::vector<Tensor> in;
  for (const auto& t : base) {
    Tensor c = t.defined() ? t.detach().clone() : t;
    if (c.defined()) c.set_requires_grad(true);
    in.push_back(c);
  }
  DeltaRuleResult r = call(in, impl, chunk);
  Generator g(77);
  Tensor Ro = Tensor::randn(r.o.shape(), g, DType::F64).to(r.o.dtype());
  Tensor Rh = Tensor::randn(r.final_state.shape(), g, DType::F64).to(r.o.dtype());
  add(sum(mul(r.o, Ro)), sum(mul(r.final_state, Rh))).backward();
  RunOut out{r.o.detach(), r.final_state.detach(), {}};
  for (const auto& t : in) out.grads.push_back(t.defined() ? t.grad() : Tensor());
  return out;
}

const char* kInputNames[] = {"q", "k", "v", "g", "beta", "initial_state"};

void expect_same(const RunOut& a, const RunOut& b, const std::string& tag, double atol, double rtol) {
  auto r = compare(tag + " o", a.o, b.o, atol, rtol);
  EXPECT_TRUE(r.ok) << r.message;
  r = compare(tag + " final_state", a.hT, b.hT, atol, rtol);
  EXPECT_TRUE(r.ok) << r.message;
  ASSERT_EQ(a.grads.size(), b.grads.size());
  for (size_t i = 0; i < a.grads.size(); ++i) {
    ASSERT_EQ(a.grads[i].defined(), b.grads[i].defined()) << tag << " d" << kInputNames[i];
    if (!a.grads[i].defined()) continue;
    r = compare(tag + " d" + kInputNames[i], a.grads[i], b.grads[i], atol, rtol);
    EXPECT_TRUE(r.ok) << r.message;
  }
}

// Both outputs as one tensor, so gradcheck's random projection covers o and the final state.
Tensor packed(const DeltaRuleResult& r) { return concat({r.o.flatten(), r.final_state.flatten()}); }

void gradcheck_impl(Impl impl, Gate gate, bool h0, int64_t chunk) {
  Spec s;
  s.B = 2;
  s.T = 7;
  s.gate = gate;
  s.h0 = h0;
  auto in = make_inputs(s, 11, DType::F64);
  std::vector<Tensor> args;
  std::vector<bool> check;
  for (const auto& t : in)
    if (t.defined()) args.push_back(t);
  auto f = [&](const std::vector<Tensor>& x) {
    size_t i = 0;
    std::vector<Tensor> full(6);
    for (size_t n = 0; n < 6; ++n)
      if (in[n].defined()) full[n] = x[i++];
    return packed(call(full, impl, chunk));
  };
  auto r = gradcheck(f, args);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(DeltaRuleRecurrent, GradcheckChannelGate) { gradcheck_impl(Impl::Recurrent, Gate::Channel, true, 64); }
TEST(DeltaRuleRecurrent, GradcheckScalarGate) { gradcheck_impl(Impl::Recurrent, Gate::Scalar, true, 64); }
TEST(DeltaRuleRecurrent, GradcheckNoGateNoInitialState) { gradcheck_impl(Impl::Recurrent, Gate::None, false, 64); }
TEST(DeltaRuleChunked, GradcheckChannelGate) { gradcheck_impl(Impl::Chunked, Gate::Channel, true, 3); }
TEST(DeltaRuleChunked, GradcheckScalarGate) { gradcheck_impl(Impl::Chunked, Gate::Scalar, true, 4); }
TEST(DeltaRuleChunked, GradcheckNoGate) { gradcheck_impl(Impl::Chunked, Gate::None, false, 2); }

// The state's gradient alone (o unused) and o's alone must both reach every input.
TEST(DeltaRuleRecurrent, GradientFromFinalStateOnly) {
  Spec s;
  auto in = make_inputs(s, 5, DType::F64);
  for (auto& t : in)
    if (t.defined()) t.set_requires_grad(true);
  DeltaRuleResult r = call(in, Impl::Recurrent);
  sum(mul(r.final_state, r.final_state)).backward();
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_TRUE(in[i].grad().defined()) << kInputNames[i];
    if (i != 0) {
      EXPECT_GT(sum(mul(in[i].grad(), in[i].grad())).item(), 0.0) << kInputNames[i];
    }
  }
  EXPECT_EQ(sum(mul(in[0].grad(), in[0].grad())).item(), 0.0);  // q only reads the state
}

struct Sweep {
  Gate gate;
  double g_lo, g_hi;
  const char* name;
};
const Sweep kSweeps[] = {
    {Gate::Channel, 0.05, 1.0, "channel"},
    {Gate::Channel, 0.0, 1e-7, "channel_g~0"},
    {Gate::Channel, 15.0, 25.0, "channel_g~-20"},
    {Gate::Channel, 2.0, 3.5, "channel_g~-2.7"},  // sub-blocks on both sides of the factoring limit
    {Gate::Scalar, 0.05, 1.0, "scalar"},
    {Gate::Scalar, 15.0, 25.0, "scalar_g~-20"},
    {Gate::None, 0, 0, "none"},
};

TEST(DeltaRuleChunked, MatchesRecurrentF64) {
  for (const auto& sw : kSweeps)
    for (int64_t T : {1, 37, 63, 100, 128}) {
      Spec s{.B = 1, .T = T, .H = 2, .dk = 16, .dv = 12, .gate = sw.gate, .g_lo = sw.g_lo, .g_hi = sw.g_hi};
      s.h0 = T != 63;  // one length without an initial state
      auto in = make_inputs(s, 100 + uint64_t(T), DType::F64);
      RunOut ref = run_grads(in, Impl::Recurrent);
      for (int64_t C : {8, 16, 32, 64}) {
        RunOut ch = run_grads(in, Impl::Chunked, C);
        expect_same(ch, ref, std::string(sw.name) + " T=" + std::to_string(T) + " C=" + std::to_string(C), 1e-10,
                    1e-9);
      }
    }
}

TEST(DeltaRuleChunked, MatchesRecurrentF32) {
  for (const auto& sw : kSweeps)
    for (int64_t T : {37, 100}) {
      Spec s{.B = 2, .T = T, .H = 2, .dk = 32, .dv = 16, .gate = sw.gate, .g_lo = sw.g_lo, .g_hi = sw.g_hi};
      auto in = make_inputs(s, 300 + uint64_t(T), DType::F32);
      RunOut ref = run_grads(in, Impl::Recurrent);
      for (int64_t C : {8, 16, 32, 64}) {
        RunOut ch = run_grads(in, Impl::Chunked, C);
        expect_same(ch, ref, std::string(sw.name) + " f32 T=" + std::to_string(T) + " C=" + std::to_string(C), 2e-4,
                    1e-3);
      }
    }
}

// The reference mode routes the chunked entry point to the recurrent reference (op-table `ref`).
TEST(DeltaRuleChunked, ReferenceModeRunsTheRecurrence) {
  Spec s{.T = 20};
  auto in = make_inputs(s, 9, DType::F64);
  DeltaRuleOptions o;
  o.chunk_size = 8;
  DeltaRuleResult rec = gated_delta_rule_recurrent(in[0], in[1], in[2], in[3], in[4], in[5], o);
  ReferenceMode rm;
  DeltaRuleResult ch = gated_delta_rule_chunked(in[0], in[1], in[2], in[3], in[4], in[5], o);
  EXPECT_TRUE(compare("o", ch.o, rec.o, 0, 0).ok);
}

// Auto = chunked above 64 tokens, recurrent up to 64: the two algorithms round differently, so
// bitwise equality tells which one ran.
TEST(DeltaRuleDispatch, AutoPicksByLength) {
  for (int64_t T : {64, 65, 100}) {
    Spec s{.T = T, .dk = 8, .dv = 8};
    auto in = make_inputs(s, 21, DType::F32);
    auto o_auto = call(in, Impl::Auto, 16).o.to_vector<float>();
    auto o_rec = call(in, Impl::Recurrent, 16).o.to_vector<float>();
    auto o_ch = call(in, Impl::Chunked, 16).o.to_vector<float>();
    ASSERT_NE(o_rec, o_ch) << "T=" << T << ": the test cannot tell the two apart";
    if (T <= 64) EXPECT_EQ(o_auto, o_rec) << "T=" << T;
    else EXPECT_EQ(o_auto, o_ch) << "T=" << T;
  }
}

// With distinct one-hot keys (T <= dk) and h0 = 0 the prediction S'^T k_t is 0, so with beta = 1 the gated
// delta rule is gated linear attention: o_t = sum_{j<=t} (scale q_t . (e^{G_t - G_j} k_j)) v_j +
// (Diag(e^{G_t}) h0)^T (scale q_t). With beta = 0 the state is only read (no writes): o_t = the h0 term.
TEST(DeltaRule, ReducesToGatedLinearAttention) {
  for (Gate gate : {Gate::None, Gate::Channel})
    for (double bval : {1.0, 0.0}) {
      Spec s{.B = 1, .T = 6, .H = 1, .dk = 8, .dv = 3, .gate = gate};
      auto in = make_inputs(s, 31, DType::F64);
      std::vector<double> k(size_t(s.T * s.dk), 0.0);
      for (int64_t t = 0; t < s.T; ++t) k[size_t(t * s.dk + (t * 3) % s.dk)] = 1.0;  // distinct channels
      in[1] = make(k, {1, s.T, 1, s.dk}, DType::F64);
      in[4] = Tensor::full({1, s.T, 1}, bval, DType::F64);
      if (bval != 0.0) in[5] = Tensor::zeros({1, 1, s.dk, s.dv}, DType::F64);  // h0 would be predicted away
      const double scale = 1.0 / std::sqrt(double(s.dk));
      auto q = in[0].to_vector<double>(), v = in[2].to_vector<double>(), h0 = in[5].to_vector<double>();
      std::vector<double> g = gate == Gate::Channel ? in[3].to_vector<double>() : std::vector<double>(k.size(), 0.0);
      std::vector<double> G(k.size(), 0.0), expect(size_t(s.T * s.dv), 0.0);
      for (int64_t t = 0; t < s.T; ++t)
        for (int64_t c = 0; c < s.dk; ++c)
          G[size_t(t * s.dk + c)] = (t ? G[size_t((t - 1) * s.dk + c)] : 0.0) + g[size_t(t * s.dk + c)];
      for (int64_t t = 0; t < s.T; ++t)
        for (int64_t e = 0; e < s.dv; ++e) {
          double acc = 0;
          for (int64_t c = 0; c < s.dk; ++c) {
            const double qt = scale * q[size_t(t * s.dk + c)];
            acc += qt * std::exp(G[size_t(t * s.dk + c)]) * h0[size_t(c * s.dv + e)];
            for (int64_t j = 0; j <= t; ++j)
              acc += bval * qt * std::exp(G[size_t(t * s.dk + c)] - G[size_t(j * s.dk + c)]) * k[size_t(j * s.dk + c)] *
                     v[size_t(j * s.dv + e)];
          }
          expect[size_t(t * s.dv + e)] = acc;
        }
      Tensor ex = make(expect, {1, s.T, 1, s.dv}, DType::F64);
      for (Impl impl : {Impl::Recurrent, Impl::Chunked}) {
        auto r = compare("gla o", call(in, impl, 4).o, ex, 1e-12, 1e-10);
        EXPECT_TRUE(r.ok) << r.message;
      }
    }
}

TEST(DeltaRuleStep, MatchesRecurrentTokenByToken) {
  for (DType dt : {DType::F64, DType::F32})
    for (Gate gate : {Gate::Channel, Gate::Scalar, Gate::None}) {
      Spec s{.B = 2, .T = 9, .H = 3, .dk = 16, .dv = 8, .gate = gate};
      auto in = make_inputs(s, 41, dt);
      DeltaRuleResult ref = call(in, Impl::Recurrent);
      NoGrad ng;
      Tensor state = in[5].clone();
      const void* storage = state.raw_data();
      std::vector<Tensor> outs;
      for (int64_t t = 0; t < s.T; ++t) {
        auto tok = [&](const Tensor& x) { return x.defined() ? x.narrow(1, t, 1) : x; };
        DeltaRuleResult r = gated_delta_rule_step(tok(in[0]), tok(in[1]), tok(in[2]), tok(in[3]), tok(in[4]), state);
        EXPECT_EQ(r.final_state.raw_data(), storage) << "state not updated in place";
        outs.push_back(r.o);
      }
      const double tol = dt == DType::F64 ? 1e-12 : 2e-5;
      auto r = compare("step o", concat(outs, 1), ref.o, tol, tol * 10);
      EXPECT_TRUE(r.ok) << r.message;
      r = compare("step state", state, ref.final_state, tol, tol * 10);
      EXPECT_TRUE(r.ok) << r.message;
    }
}

TEST(DeltaRuleStep, UndefinedOrStridedStateIsNotWritten) {
  Spec s{.B = 1, .T = 1, .H = 2, .dk = 4, .dv = 4};
  auto in = make_inputs(s, 51, DType::F64);
  NoGrad ng;
  DeltaRuleResult ref = call(in, Impl::Recurrent);
  // A transposed view of the state: a copy is advanced, the view is left alone.
  Tensor base = in[5].transpose(2, 3).contiguous();
  Tensor view = base.transpose(2, 3);
  auto before = base.to_vector<double>();
  DeltaRuleResult r = gated_delta_rule_step(in[0], in[1], in[2], in[3], in[4], view);
  EXPECT_EQ(base.to_vector<double>(), before);
  EXPECT_TRUE(compare("state", r.final_state, ref.final_state, 1e-12, 1e-10).ok);
  DeltaRuleResult z = gated_delta_rule_step(in[0], in[1], in[2], in[3], in[4], Tensor());
  std::vector<Tensor> no_h0 = in;
  no_h0[5] = Tensor();
  EXPECT_TRUE(compare("o", z.o, call(no_h0, Impl::Recurrent).o, 1e-12, 1e-10).ok);
}

TEST(DeltaRuleStep, RefusesToRecordGradients) {
  Spec s{.T = 1};
  auto in = make_inputs(s, 61, DType::F32);
  in[0].set_requires_grad(true);
  expect_error<AutogradError>([&] { gated_delta_rule_step(in[0], in[1], in[2], in[3], in[4], in[5]); },
                              "[gated_delta_rule_step] records no gradient");
}

TEST(DeltaRule, ValidatesShapesAndDtypes) {
  Spec s;
  auto in = make_inputs(s, 71, DType::F32);
  auto with = [&](size_t i, const Tensor& t) {
    auto x = in;
    x[i] = t;
    return [x] { call(x, Impl::Auto); };
  };
  expect_error<ShapeError>(with(1, Tensor::zeros({1, 5, 2, 3})), "k must have the shape of q");
  expect_error<ShapeError>(with(2, Tensor::zeros({1, 4, 2, 3})), "v must be [B, T, H, dv]");
  expect_error<ShapeError>(with(3, Tensor::zeros({1, 5, 2, 3})), "g must be [B, T, H, dk]");
  expect_error<ShapeError>(with(4, Tensor::zeros({1, 5, 2, 1})), "beta must be [B, T, H]");
  expect_error<ShapeError>(with(5, Tensor::zeros({1, 2, 3, 4})), "initial_state must be [B, H, dk, dv]");
  expect_error<ShapeError>(with(0, Tensor::zeros({5, 2, 4})), "q must be [B, T, H, dk]");
  expect_error<DTypeError>(with(2, Tensor::zeros({1, 5, 2, 3}, DType::F64)), "dtype mismatch");
  expect_error<DTypeError>(with(3, Tensor::zeros({1, 5, 2, 4}, DType::I64)), "argument 'g'");
  DeltaRuleOptions o;
  o.chunk_size = 0;
  expect_error<ValueError>([&] { gated_delta_rule_chunked(in[0], in[1], in[2], in[3], in[4], in[5], o); },
                           "chunk_size must be >= 1");
}

}  // namespace
}  // namespace lmlab::test
