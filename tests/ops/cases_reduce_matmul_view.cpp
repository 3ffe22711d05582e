// Op-table cases: reductions over any axes, matmul (batched, broadcast, transposed), views, casts.
#include "tests/ops/op_table.h"

namespace lmlab::test {
namespace {

using In = std::function<std::vector<Tensor>(Generator&, DType)>;
In one(Shape s) { return [s](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, s, dt)}; }; }

std::vector<OpCase> reduce_cases() {
  std::vector<OpCase> cs;
  struct R { OpKind k; const char* n; std::function<Tensor(const Tensor&, std::vector<int64_t>, bool)> f; };
  std::vector<R> rs = {
      {OpKind::Sum, "sum", [](const Tensor& x, std::vector<int64_t> d, bool k) { return sum(x, d, k); }},
      {OpKind::Mean, "mean", [](const Tensor& x, std::vector<int64_t> d, bool k) { return mean(x, d, k); }},
      {OpKind::Max, "max", [](const Tensor& x, std::vector<int64_t> d, bool k) { return max(x, d, k); }},
      {OpKind::Min, "min", [](const Tensor& x, std::vector<int64_t> d, bool k) { return min(x, d, k); }},
      {OpKind::Logsumexp, "logsumexp",
       [](const Tensor& x, std::vector<int64_t> d, bool k) { return logsumexp(x, d, k); }},
      {OpKind::Var, "var", [](const Tensor& x, std::vector<int64_t> d, bool k) { return var(x, d, 1, k); }},
  };
  struct D { Shape s; std::vector<int64_t> dims; bool keep; bool transposed; };
  std::vector<D> ds = {{{7}, {}, false, false},          {{5, 13}, {1}, false, false},   {{5, 13}, {0}, true, false},
                       {{3, 4, 5}, {0, 2}, false, false}, {{3, 4, 5}, {-1}, true, true}, {{2, 3, 1, 7}, {1, 2}, false, false},
                       {{11, 3}, {0}, false, true}};
  for (const auto& r : rs) {
    for (const auto& d : ds) {
      OpCase c;
      c.kind = r.k;
      c.name = std::string(r.n) + "_" + shape_str(d.s) + "_dims" + shape_str(d.dims) + (d.keep ? "_keep" : "") +
               (d.transposed ? "_T" : "");
      auto f = r.f;
      c.fn = [f, d](const std::vector<Tensor>& in) {
        Tensor x = d.transposed ? in[0].transpose(0, -1) : in[0];
        return f(x, d.dims, d.keep);
      };
      Shape s = d.s;
      if (d.transposed) std::swap(s.front(), s.back());
      c.inputs = one(s);
      cs.push_back(c);
    }
  }
  OpCase a;
  a.kind = OpKind::Argmax;
  a.name = "argmax_rows";
  a.grad = false;
  a.inputs = one({6, 9});
  a.fn = [](const std::vector<Tensor>& in) { return argmax(in[0], 1); };
  cs.push_back(a);
  OpCase a2 = a;
  a2.name = "argmax_dim0_keep_T";
  a2.fn = [](const std::vector<Tensor>& in) { return argmax(in[0].transpose(0, 1), 0, true); };
  cs.push_back(a2);
  return cs;
}

std::vector<OpCase> matmul_cases() {
  std::vector<OpCase> cs;
  struct M { Shape a, b; bool ta, tb; };
  std::vector<M> ms = {{{1, 1}, {1, 1}, false, false},     {{7, 13}, {13, 5}, false, false},
                       {{7, 13}, {13, 5}, true, false},    {{7, 13}, {13, 5}, false, true},
                       {{2, 3, 7, 11}, {11, 4}, false, false}, {{4, 1, 5, 6}, {3, 6, 2}, false, true},
                       {{13}, {13, 3}, false, false},      {{3, 13}, {13}, false, false},
                       {{6, 31, 17}, {6, 17, 19}, true, true}};
  for (const auto& m : ms) {
    OpCase c;
    c.kind = OpKind::Matmul;
    c.name = "matmul_" + shape_str(m.a) + "_" + shape_str(m.b) + (m.ta ? "_tA" : "") + (m.tb ? "_tB" : "");
    auto swap_last = [](Shape s) {
      if (s.size() >= 2) std::swap(s[s.size() - 1], s[s.size() - 2]);
      return s;
    };
    Shape sa = m.ta ? swap_last(m.a) : m.a, sb = m.tb ? swap_last(m.b) : m.b;
    c.inputs = [sa, sb](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, sa, dt), randn(g, sb, dt)}; };
    c.fn = [m](const std::vector<Tensor>& in) {
      Tensor a = m.ta ? in[0].transpose(-1, -2) : in[0];
      Tensor b = m.tb ? in[1].transpose(-1, -2) : in[1];
      return matmul(a, b);
    };
    cs.push_back(c);
  }
  OpCase l;
  l.kind = OpKind::Matmul;
  l.name = "linear_bias_3d";
  l.inputs = [](Generator& g, DType dt) {
    return std::vector<Tensor>{randn(g, {2, 5, 7}, dt), randn(g, {3, 7}, dt), randn(g, {3}, dt)};
  };
  l.fn = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); };
  cs.push_back(l);
  return cs;
}

std::vector<OpCase> view_cases() {
  std::vector<OpCase> cs;
  auto add_case = [&](OpKind k, const std::string& n, Shape s, std::function<Tensor(const Tensor&)> f) {
    OpCase c;
    c.kind = k;
    c.name = n;
    c.inputs = one(s);
    // multiply by a position-dependent tensor so the gradient's layout matters
    c.fn = [f](const std::vector<Tensor>& in) {
      Tensor y = f(in[0]);
      return mul(y, y);
    };
    cs.push_back(c);
  };
  add_case(OpKind::Contiguous, "contiguous_of_transpose", {4, 7}, [](const Tensor& x) { return x.transpose(0, 1).contiguous(); });
  add_case(OpKind::Reshape, "reshape_view", {4, 6}, [](const Tensor& x) { return x.reshape({2, 12}); });
  add_case(OpKind::Reshape, "reshape_copy_of_permute", {3, 4, 5},
           [](const Tensor& x) { return x.permute({2, 0, 1}).reshape({5, 12}); });
  add_case(OpKind::Transpose, "transpose_3d", {2, 3, 4}, [](const Tensor& x) { return x.transpose(0, 2); });
  add_case(OpKind::Permute, "permute_4d", {2, 3, 1, 5}, [](const Tensor& x) { return x.permute({3, 1, 0, 2}); });
  add_case(OpKind::Slice, "slice_step", {9, 4}, [](const Tensor& x) { return x.slice(0, 1, 8, 3); });
  add_case(OpKind::Slice, "narrow_last", {3, 10}, [](const Tensor& x) { return x.narrow(1, 2, 5); });
  add_case(OpKind::Select, "select_mid", {3, 5, 2}, [](const Tensor& x) { return x.select(1, 3); });
  add_case(OpKind::Expand, "expand_broadcast", {3, 1}, [](const Tensor& x) { return x.expand({2, 3, 4}); });
  add_case(OpKind::Reshape, "unsqueeze_squeeze_flatten", {3, 4},
           [](const Tensor& x) { return x.unsqueeze(1).squeeze(1).flatten(); });
  OpCase c;
  c.kind = OpKind::Cast;
  c.name = "cast_f32_f64_roundtrip";
  c.inputs = one({5, 3});
  c.fn = [](const std::vector<Tensor>& in) {
    DType other = in[0].dtype() == DType::F32 ? DType::F64 : DType::F32;
    return mul(in[0].to(other), 2.0).to(in[0].dtype());
  };
  c.grad_atol = 1e-4;  // the f32 round trip inside limits the finite-difference precision
  c.grad_rtol = 1e-3;
  c.eps = 1e-3;
  cs.push_back(c);
  return cs;
}

LMLAB_OP_CASES(reduce_cases());
LMLAB_OP_CASES(matmul_cases());
LMLAB_OP_CASES(view_cases());

}  // namespace
}  // namespace lmlab::test
