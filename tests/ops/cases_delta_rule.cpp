// Op-table cases for the gated delta rule (ops/delta_rule/): the chunked form (ref mode: f32
// chunked vs the recurrent reference; grad mode: f64 central differences through it) with chunk
// sizes that do and do not divide T, channel / scalar / no gates, gates near -20, with and without
// an initial state, a non-contiguous q, and Auto above 64 tokens. The output is o and the final
// state flattened into one tensor, so the random projection reaches both.
#include <cmath>

#include "lmlab/ops/delta_rule/delta_rule.h"
#include "tests/ops/op_table.h"

namespace lmlab::test {
namespace {

enum class Gate { None, Scalar, Channel };
using Impl = DeltaRuleOptions::Impl;

struct Spec {
  int64_t B, T, H, dk, dv;
  Gate gate = Gate::Channel;
  bool h0 = true;
  Impl impl = Impl::Chunked;
  int64_t chunk = 8;
  double g_scale = 1.0;       // g = -g_scale * U(0.1, 1)
  bool q_transposed = false;  // q built as [B, H, T, dk] and transposed to [B, T, H, dk]
};

std::string spec_name(const Spec& s) {
  const char* gates[] = {"nogate", "scalar", "channel"};
  const char* impls[] = {"auto", "recurrent", "chunked"};
  std::string n = std::string("gated_delta_rule_") + impls[int(s.impl)] + "_B" + std::to_string(s.B) + "_T" +
                  std::to_string(s.T) + "_H" + std::to_string(s.H) + "_dk" + std::to_string(s.dk) + "_dv" +
                  std::to_string(s.dv) + "_" + gates[int(s.gate)] + "_C" + std::to_string(s.chunk);
  if (s.h0) n += "_h0";
  if (s.g_scale != 1.0) n += "_gx" + std::to_string(int(s.g_scale));
  if (s.q_transposed) n += "_qT";
  return n;
}

// Rows of the last dim scaled to unit L2 norm (as the KDA layer feeds q and k).
Tensor unit_rows(Generator& g, const Shape& s, DType dt) {
  auto x = Tensor::randn(s, g, DType::F64).to_vector<double>();
  const size_t D = size_t(s.back());
  for (size_t r = 0; r < x.size(); r += D) {
    double n = 0;
    for (size_t c = 0; c < D; ++c) n += x[r + c] * x[r + c];
    for (size_t c = 0; c < D; ++c) x[r + c] /= std::sqrt(n);
  }
  return Tensor::from_vector(x, s).to(dt);
}

OpCase make_case(const Spec& s) {
  OpCase c;
  c.kind = OpKind::GatedDeltaRule;
  c.name = spec_name(s);
  // Inputs in order q, k, v, beta, [g], [h0]: only defined tensors, so every input is checked.
  c.inputs = [s](Generator& g, DType dt) {
    std::vector<Tensor> in;
    in.push_back(s.q_transposed ? unit_rows(g, {s.B, s.H, s.T, s.dk}, dt) : unit_rows(g, {s.B, s.T, s.H, s.dk}, dt));
    in.push_back(unit_rows(g, {s.B, s.T, s.H, s.dk}, dt));
    in.push_back(randn(g, {s.B, s.T, s.H, s.dv}, dt));
    in.push_back(rand_pos(g, {s.B, s.T, s.H}, dt, 0.05, 0.95));
    if (s.gate == Gate::Channel) in.push_back(mul(rand_pos(g, {s.B, s.T, s.H, s.dk}, dt, 0.1, 1.0), -s.g_scale));
    if (s.gate == Gate::Scalar) in.push_back(mul(rand_pos(g, {s.B, s.T, s.H}, dt, 0.1, 1.0), -s.g_scale));
    if (s.h0) in.push_back(randn(g, {s.B, s.H, s.dk, s.dv}, dt, 0.5));
    return in;
  };
  c.fn = [s](const std::vector<Tensor>& in) {
    DeltaRuleOptions o;
    o.impl = s.impl;
    o.chunk_size = s.chunk;
    size_t i = 4;
    Tensor g = s.gate != Gate::None ? in[i++] : Tensor();
    Tensor h0 = s.h0 ? in[i++] : Tensor();
    Tensor q = s.q_transposed ? in[0].transpose(1, 2) : in[0];
    DeltaRuleResult r = gated_delta_rule(q, in[1], in[2], g, in[3], h0, o);
    return concat({r.o.flatten(), r.final_state.flatten()});
  };
  return c;
}

std::vector<OpCase> delta_rule_cases() {
  std::vector<Spec> specs = {
      {.B = 1, .T = 1, .H = 1, .dk = 4, .dv = 4},
      {.B = 2, .T = 13, .H = 2, .dk = 8, .dv = 4},
      {.B = 1, .T = 16, .H = 2, .dk = 8, .dv = 8, .chunk = 8},
      {.B = 1, .T = 9, .H = 3, .dk = 5, .dv = 3, .gate = Gate::Scalar, .h0 = false, .chunk = 4},
      {.B = 1, .T = 20, .H = 2, .dk = 8, .dv = 6, .gate = Gate::None, .chunk = 8},
      {.B = 1, .T = 37, .H = 1, .dk = 16, .dv = 8, .chunk = 16},
      {.B = 1, .T = 21, .H = 2, .dk = 8, .dv = 4, .chunk = 8, .g_scale = 20.0},
      {.B = 1, .T = 21, .H = 2, .dk = 8, .dv = 4, .gate = Gate::Scalar, .chunk = 16, .g_scale = 20.0},
      {.B = 2, .T = 11, .H = 2, .dk = 8, .dv = 4, .chunk = 4, .q_transposed = true},
      {.B = 1, .T = 7, .H = 2, .dk = 6, .dv = 5, .impl = Impl::Recurrent},
      {.B = 1, .T = 70, .H = 1, .dk = 8, .dv = 4, .impl = Impl::Auto, .chunk = 32},
  };
  std::vector<OpCase> cs;
  for (const auto& s : specs) cs.push_back(make_case(s));
  return cs;
}

LMLAB_OP_CASES(delta_rule_cases());

}  // namespace
}  // namespace lmlab::test
