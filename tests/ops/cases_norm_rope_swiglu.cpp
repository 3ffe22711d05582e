// Op-table cases for the fused ops: rms_norm / layer_norm (C in {1, 7, 64}, odd and prime row
// counts, optional weight/bias, transposed x), rope (partial rotary, interleaved, offsets, explicit
// positions, linear/llama3/yarn scaling, T = 1, odd H, a [B, H, T, D] transposed view) and swiglu
// (same shape, broadcast, transposed). Small shapes keep the float64 gradchecks cheap; one larger
// case per op exercises the multi-threaded paths (several row chunks in the norm backward).
#include "tests/ops/op_table.h"

namespace lmlab::test {
namespace {

// ---- norms ----
struct NormCase {
  Shape x;               // logical shape [..., C]
  bool weight, bias;
  bool transposed;       // x is a transposed view of a [..., C, R] tensor
  double eps;
};

std::string norm_name(const char* op, const NormCase& n) {
  std::string s = std::string(op) + "_x" + shape_str(n.x) + (n.weight ? "_w" : "") + (n.bias ? "_b" : "") +
                  (n.transposed ? "_T" : "");
  if (n.eps >= 1e-3) s += "_eps" + std::to_string(n.eps).substr(0, 4);
  return s;
}

// Inputs are {x (stored transposed when n.transposed), weight?, bias?}; weight around 1, bias around 0.
OpCase norm_case(OpKind kind, const char* op, const NormCase& n) {
  OpCase c;
  c.kind = kind;
  c.name = norm_name(op, n);
  int64_t C = n.x.back();
  Shape stored = n.x;
  if (n.transposed) std::swap(stored[stored.size() - 1], stored[stored.size() - 2]);
  c.inputs = [n, C, stored](Generator& g, DType dt) {
    std::vector<Tensor> in{randn(g, stored, dt)};
    if (n.weight) in.push_back(randn(g, {C}, dt, 0.5, 1.0));
    if (n.bias) in.push_back(randn(g, {C}, dt, 0.5));
    return in;
  };
  bool is_rms = kind == OpKind::RmsNorm;
  c.fn = [n, is_rms](const std::vector<Tensor>& in) {
    Tensor x = n.transposed ? in[0].transpose(-1, -2) : in[0];
    size_t k = 1;
    Tensor w = n.weight ? in[k++] : Tensor();
    Tensor b = n.bias ? in[k++] : Tensor();
    return is_rms ? rms_norm(x, w, n.eps) : layer_norm(x, w, b, n.eps);
  };
  return c;
}

std::vector<OpCase> norm_cases() {
  std::vector<OpCase> cs;
  // C = 1 RMSNorm is x / sqrt(x^2 + eps): a larger eps keeps it smooth enough for finite differences.
  std::vector<NormCase> rms = {
      {{13, 1}, true, false, false, 0.1},     {{13, 1}, false, false, false, 0.1},
      {{11, 7}, true, false, false, 1e-6},    {{11, 7}, false, false, false, 1e-6},
      {{3, 5, 64}, true, false, false, 1e-6}, {{5, 64}, true, false, true, 1e-6},
      {{2, 3, 7}, false, false, true, 1e-6},  {{37, 1000}, true, false, false, 1e-6},
  };
  for (const auto& n : rms) cs.push_back(norm_case(OpKind::RmsNorm, "rms_norm", n));
  std::vector<NormCase> ln = {
      {{13, 1}, true, true, false, 1e-5},    {{11, 7}, true, true, false, 1e-5},
      {{11, 7}, true, false, false, 1e-5},   {{11, 7}, false, true, false, 1e-5},
      {{11, 7}, false, false, false, 1e-5},  {{3, 5, 64}, true, true, false, 1e-5},
      {{5, 64}, true, true, true, 1e-5},     {{2, 3, 7}, false, true, true, 1e-5},
      {{37, 1000}, true, true, false, 1e-5},
  };
  for (const auto& n : ln) cs.push_back(norm_case(OpKind::LayerNorm, "layer_norm", n));
  return cs;
}

// ---- rope ----
struct RopeCase {
  std::string name;
  Shape x;  // [B, T, H, D]
  RopeConfig cfg;
  enum class Pos { Offset, ExplicitT, ExplicitBT } pos = Pos::Offset;
  int64_t offset = 0;
  bool transposed = false;  // x is a transpose(1, 2) view of a [B, H, T, D] tensor
};

RopeConfig rope_cfg(int64_t D, int64_t rot = 0, bool interleaved = false) {
  RopeConfig c;
  c.head_dim = D;
  c.rotary_dim = rot;
  c.interleaved = interleaved;
  return c;
}

OpCase rope_case(const RopeCase& r) {
  OpCase c;
  c.kind = OpKind::Rope;
  c.name = "rope_" + r.name + "_x" + shape_str(r.x);
  int64_t B = r.x[0], T = r.x[1];
  Shape stored = r.transposed ? Shape{r.x[0], r.x[2], r.x[1], r.x[3]} : r.x;
  c.inputs = [r, B, T, stored](Generator& g, DType dt) {
    std::vector<Tensor> in{randn(g, stored, dt)};
    if (r.pos == RopeCase::Pos::ExplicitT) {
      std::vector<int32_t> p;
      for (int64_t t = 0; t < T; ++t) p.push_back(int32_t(3 * t + 1));  // non-consecutive positions
      in.push_back(Tensor::from_vector<int32_t>(p, {T}));
    } else if (r.pos == RopeCase::Pos::ExplicitBT) {
      std::vector<int64_t> p;
      // Batch rows differ, as with packed or left-padded sequences.
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t) p.push_back(b == 0 ? t : 17 - 2 * t);
      in.push_back(Tensor::from_vector<int64_t>(p, {B, T}));
    }
    return in;
  };
  c.fn = [r](const std::vector<Tensor>& in) {
    Tensor x = r.transposed ? in[0].transpose(1, 2) : in[0];
    return r.pos == RopeCase::Pos::Offset ? rope(x, r.cfg, r.offset) : rope(x, r.cfg, in[1]);
  };
  return c;
}

std::vector<OpCase> rope_cases() {
  using P = RopeCase::Pos;
  RopeConfig linear = rope_cfg(8);
  linear.scaling.type = RopeScaling::Type::Linear;
  linear.scaling.factor = 2.5;
  // original_max_position 64 puts the four D = 8 wavelengths (6.3, 63, 628, 6283) in all three
  // llama3 bands: kept (< 16), blended (16..64), divided (> 64).
  RopeConfig llama3 = rope_cfg(8);
  llama3.scaling.type = RopeScaling::Type::Llama3;
  llama3.scaling.factor = 8;
  llama3.scaling.original_max_position = 64;
  // yarn at D = 16, L = 64: correction range [0, 3], so pairs 0..7 see the whole ramp.
  RopeConfig yarn = rope_cfg(16);
  yarn.scaling.type = RopeScaling::Type::Yarn;
  yarn.scaling.factor = 4;
  yarn.scaling.original_max_position = 64;
  RopeConfig yarn_partial = rope_cfg(16, 8, true);
  yarn_partial.scaling = yarn.scaling;
  yarn_partial.scaling.attention_factor = 1.3;
  std::vector<RopeCase> rs = {
      {"default", {2, 5, 3, 8}, rope_cfg(8)},
      {"partial_rot4", {2, 5, 3, 8}, rope_cfg(8, 4)},
      {"interleaved", {2, 5, 3, 8}, rope_cfg(8, 0, true)},
      {"interleaved_partial_rot4", {1, 7, 3, 8}, rope_cfg(8, 4, true)},
      {"pos_offset5", {2, 5, 3, 8}, rope_cfg(8), P::Offset, 5},
      {"positions_T_i32", {2, 5, 3, 8}, rope_cfg(8), P::ExplicitT},
      {"positions_BT_i64", {2, 5, 3, 8}, rope_cfg(8), P::ExplicitBT},
      {"linear_f2.5", {2, 5, 3, 8}, linear, P::Offset, 3},
      {"llama3_L64", {2, 5, 3, 8}, llama3, P::Offset, 40},
      {"yarn_f4_L64", {1, 5, 3, 16}, yarn, P::Offset, 2},
      {"yarn_partial_interleaved_attn1.3", {2, 3, 1, 16}, yarn_partial, P::ExplicitBT},
      {"T1_offset7", {3, 1, 5, 8}, rope_cfg(8), P::Offset, 7},
      {"transposed_BHTD", {2, 5, 3, 8}, rope_cfg(8), P::Offset, 0, true},
      {"large", {2, 33, 5, 64}, rope_cfg(64, 48), P::Offset, 100},
  };
  std::vector<OpCase> cs;
  for (const auto& r : rs) cs.push_back(rope_case(r));
  return cs;
}

// ---- swiglu ----
std::vector<OpCase> swiglu_cases() {
  struct S { std::string name; Shape gate, up; bool transposed_gate; };
  std::vector<S> ss = {
      {"same", {7, 13}, {7, 13}, false},          {"same_3d", {3, 5, 64}, {3, 5, 64}, false},
      {"broadcast", {4, 1, 7}, {3, 7}, false},    {"transposed_gate", {13, 7}, {7, 13}, true},
      {"single", {1}, {1}, false},                {"large", {33, 1001}, {33, 1001}, false},
  };
  std::vector<OpCase> cs;
  for (const auto& s : ss) {
    OpCase c;
    c.kind = OpKind::Swiglu;
    c.name = "swiglu_" + s.name + "_" + shape_str(s.gate) + "_" + shape_str(s.up);
    c.inputs = [s](Generator& g, DType dt) {
      return std::vector<Tensor>{randn(g, s.gate, dt, 2.0), randn(g, s.up, dt)};
    };
    c.fn = [s](const std::vector<Tensor>& in) {
      return swiglu(s.transposed_gate ? in[0].transpose(0, 1) : in[0], in[1]);
    };
    cs.push_back(c);
  }
  return cs;
}

LMLAB_OP_CASES(norm_cases());
LMLAB_OP_CASES(rope_cases());
LMLAB_OP_CASES(swiglu_cases());

}  // namespace
}  // namespace lmlab::test
