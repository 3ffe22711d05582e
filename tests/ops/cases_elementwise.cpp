// Op-table cases: elementwise unary/binary with broadcasting, non-contiguous views, odd/prime sizes.
#include "tests/ops/op_table.h"

namespace lmlab::test {
namespace {

// Values kept at least 0.2 away from 0 (kinks of abs/relu).
Tensor away0(Generator& g, const Shape& s, DType dt) {
  Tensor t = randn(g, s, dt);
  NoGrad ng;
  Tensor sgn = where(gt(t, Tensor::zeros({}, dt)), Tensor::full({}, 0.2, dt), Tensor::full({}, -0.2, dt));
  return add(t, sgn).detach();
}

using In = std::function<std::vector<Tensor>(Generator&, DType)>;
In one(Shape s) { return [s](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, s, dt)}; }; }
In one_pos(Shape s) { return [s](Generator& g, DType dt) { return std::vector<Tensor>{rand_pos(g, s, dt)}; }; }


std::vector<OpCase> unary_cases() {
  struct U { OpKind k; const char* n; std::function<Tensor(const Tensor&)> f; bool pos; bool kink; };
  std::vector<U> us = {
      {OpKind::Neg, "neg", [](const Tensor& x) { return neg(x); }, false, false},
      {OpKind::Exp, "exp", [](const Tensor& x) { return exp(x); }, false, false},
      {OpKind::Log, "log", [](const Tensor& x) { return log(x); }, true, false},
      {OpKind::Sqrt, "sqrt", [](const Tensor& x) { return sqrt(x); }, true, false},
      {OpKind::Rsqrt, "rsqrt", [](const Tensor& x) { return rsqrt(x); }, true, false},
      {OpKind::Abs, "abs", [](const Tensor& x) { return abs(x); }, false, true},
      {OpKind::Tanh, "tanh", [](const Tensor& x) { return tanh(x); }, false, false},
      {OpKind::Sigmoid, "sigmoid", [](const Tensor& x) { return sigmoid(x); }, false, false},
      {OpKind::Silu, "silu", [](const Tensor& x) { return silu(x); }, false, false},
      {OpKind::GeluTanh, "gelu_tanh", [](const Tensor& x) { return gelu(x, true); }, false, false},
      {OpKind::GeluExact, "gelu_exact", [](const Tensor& x) { return gelu(x, false); }, false, false},
      {OpKind::Relu, "relu", [](const Tensor& x) { return relu(x); }, false, true},
      {OpKind::Softplus, "softplus", [](const Tensor& x) { return softplus(x, 1.5, 4.0); }, false, false},
      {OpKind::Clamp, "clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.7); }, false, true},
      {OpKind::Pow, "pow_scalar", [](const Tensor& x) { return pow(x, 2.5); }, true, false},
  };
  std::vector<OpCase> cs;
  for (const auto& u : us) {
    for (Shape s : {Shape{1}, Shape{7, 13}, Shape{3, 1, 5}}) {
      OpCase c;
      c.kind = u.k;
      c.name = std::string(u.n) + "_" + shape_str(s);
      auto f = u.f;
      c.fn = [f](const std::vector<Tensor>& in) { return f(in[0]); };
      if (u.pos) c.inputs = one_pos(s);
      else if (u.k == OpKind::Clamp) {
        c.inputs = [s](Generator& g, DType dt) {
          // keep inputs away from the clamp bounds -0.5 and 0.7
          Tensor t = randn(g, s, dt);
          auto v = t.to_vector<double>();
          for (auto& x : v) {
            if (std::abs(x + 0.5) < 0.05) x -= 0.1;
            if (std::abs(x - 0.7) < 0.05) x += 0.1;
          }
          return std::vector<Tensor>{Tensor::from_vector(v, s).to(dt)};
        };
      } else if (u.kink) c.inputs = [s](Generator& g, DType dt) { return std::vector<Tensor>{away0(g, s, dt)}; };
      else c.inputs = one(s);
      cs.push_back(c);
    }
    // non-contiguous input: transposed view
    OpCase c;
    c.kind = u.k;
    c.name = std::string(u.n) + "_transposed_11x6";
    auto f = u.f;
    c.fn = [f](const std::vector<Tensor>& in) { return f(in[0].transpose(0, 1)); };
    if (u.pos) c.inputs = one_pos({6, 11});
    else c.inputs = [](Generator& g, DType dt) { return std::vector<Tensor>{away0(g, {6, 11}, dt)}; };
    if (u.k == OpKind::Clamp) c.inputs = [](Generator& g, DType dt) {
      return std::vector<Tensor>{add(mul(away0(g, {6, 11}, dt), 3.0), 0.0)};
    };
    cs.push_back(c);
  }
  // softplus above its threshold (linear branch)
  OpCase sp;
  sp.kind = OpKind::Softplus;
  sp.name = "softplus_threshold_branch";
  sp.inputs = [](Generator& g, DType dt) { return std::vector<Tensor>{rand_pos(g, {9}, dt, 25.0, 30.0)}; };
  sp.fn = [](const std::vector<Tensor>& in) { return softplus(in[0]); };
  cs.push_back(sp);
  return cs;
}

std::vector<OpCase> binary_cases() {
  struct B { OpKind k; const char* n; std::function<Tensor(const Tensor&, const Tensor&)> f; };
  std::vector<B> bs = {
      {OpKind::Add, "add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {OpKind::Sub, "sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {OpKind::Mul, "mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {OpKind::Div, "div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {OpKind::Pow, "pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); }},
  };
  std::vector<std::pair<Shape, Shape>> shapes = {
      {{1}, {1}}, {{5, 7}, {5, 7}}, {{4, 1, 3}, {5, 1}}, {{13}, {}}, {{2, 3, 5}, {3, 1}}, {{1, 17}, {11, 1}}};
  std::vector<OpCase> cs;
  for (const auto& b : bs) {
    for (const auto& [sa, sb] : shapes) {
      OpCase c;
      c.kind = b.k;
      c.name = std::string(b.n) + "_" + shape_str(sa) + "_" + shape_str(sb);
      auto f = b.f;
      c.fn = [f](const std::vector<Tensor>& in) { return f(in[0], in[1]); };
      bool positive = b.k == OpKind::Div || b.k == OpKind::Pow;
      c.inputs = [sa, sb, positive, k = b.k](Generator& g, DType dt) {
        Tensor a = k == OpKind::Pow ? rand_pos(g, sa, dt) : randn(g, sa, dt);
        Tensor bb = positive ? rand_pos(g, sb, dt) : randn(g, sb, dt);
        return std::vector<Tensor>{a, bb};
      };
      cs.push_back(c);
    }
    OpCase c;
    c.kind = b.k;
    c.name = std::string(b.n) + "_noncontig_views";
    auto f = b.f;
    c.fn = [f](const std::vector<Tensor>& in) { return f(in[0].transpose(0, 1), in[1].slice(1, 0, 10, 2)); };
    c.inputs = [](Generator& g, DType dt) {
      return std::vector<Tensor>{rand_pos(g, {5, 3}, dt), rand_pos(g, {3, 10}, dt)};
    };
    cs.push_back(c);
  }
  // where / masked_fill
  OpCase w;
  w.kind = OpKind::Where;
  w.name = "where_broadcast";
  w.inputs = [](Generator& g, DType dt) {
    Tensor cond = gt(randn(g, {4, 1, 6}, DType::F64), Tensor::zeros({}, DType::F64));
    return std::vector<Tensor>{cond, randn(g, {3, 6}, dt), randn(g, {4, 3, 1}, dt)};
  };
  w.fn = [](const std::vector<Tensor>& in) { return where(in[0], in[1], in[2]); };
  cs.push_back(w);
  OpCase m;
  m.kind = OpKind::MaskedFill;
  m.name = "masked_fill_causal";
  m.inputs = [](Generator& g, DType dt) {
    std::vector<uint8_t> mask(7 * 7);
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 7; ++j) mask[size_t(i * 7 + j)] = j > i;
    return std::vector<Tensor>{randn(g, {2, 7, 7}, dt), Tensor::from_vector(mask, {7, 7})};
  };
  m.fn = [](const std::vector<Tensor>& in) { return masked_fill(in[0], in[1], -3.0); };
  cs.push_back(m);
  return cs;
}

LMLAB_OP_CASES(unary_cases());
LMLAB_OP_CASES(binary_cases());

}  // namespace
}  // namespace lmlab::test
