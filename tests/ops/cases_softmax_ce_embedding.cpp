// Op-table cases: softmax / log_softmax along any dim, fused cross-entropy (ignore_index, label
// smoothing, z-loss, each reduction, i32 targets), embedding (repeated ids, nd ids), dropout (the
// mask is fixed by a Generator built inside the case, so every evaluation sees the same mask).
#include "tests/ops/op_table.h"

namespace lmlab::test {
namespace {

// ---- softmax / log_softmax ----
std::vector<OpCase> softmax_cases() {
  std::vector<OpCase> cs;
  struct S {
    Shape s;  // shape seen by the op
    int64_t dim;
    bool transposed;  // input built as s with dims 0 and last swapped, then transposed back
    double scale, shift;
  };
  std::vector<S> ss = {{{1}, -1, false, 1, 0},        {{1, 1}, 0, false, 1, 0},      {{7}, 0, false, 1, 0},
                       {{5, 13}, 1, false, 1, 0},     {{5, 13}, 0, false, 1, 0},     {{3, 4, 37}, -1, false, 1, 0},
                       {{3, 4, 5}, 1, false, 1, 0},   {{5, 13}, -1, true, 1, 0},     {{6, 2, 7}, 0, true, 1, 0},
                       {{2, 101}, -1, false, 3, 40},  {{1, 1, 2}, -1, false, 1, 0},   {{2, 307}, -1, false, 1, 0}};
  for (bool log : {false, true}) {
    for (const auto& d : ss) {
      OpCase c;
      c.kind = log ? OpKind::LogSoftmax : OpKind::Softmax;
      c.name = std::string(log ? "log_softmax_" : "softmax_") + shape_str(d.s) + "_dim" + std::to_string(d.dim) +
               (d.transposed ? "_T" : "") + (d.shift != 0 ? "_shifted" : "");
      Shape in = d.s;
      if (d.transposed) std::swap(in.front(), in.back());
      c.inputs = [in, d](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, in, dt, d.scale, d.shift)}; };
      c.fn = [d, log](const std::vector<Tensor>& x) {
        Tensor v = d.transposed ? x[0].transpose(0, -1) : x[0];
        return log ? log_softmax(v, d.dim) : softmax(v, d.dim);
      };
      cs.push_back(c);
    }
  }
  return cs;
}

// ---- cross-entropy ----
// Targets in [0, V) drawn from g; rows with i % ignore_every == 1 get `ignore` (none when 0).
Tensor targets(Generator& g, int64_t N, int64_t V, int64_t ignore_every, int64_t ignore, bool i32) {
  std::vector<int64_t> t(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i)
    t[size_t(i)] = (ignore_every > 0 && i % ignore_every == 1) ? ignore : g.randint(0, V);
  if (!i32) return Tensor::from_vector(t, {N});
  std::vector<int32_t> t32(t.begin(), t.end());
  return Tensor::from_vector(t32, {N});
}

std::vector<OpCase> cross_entropy_cases() {
  std::vector<OpCase> cs;
  struct C {
    std::string name;
    int64_t N, V;
    CrossEntropyOptions opt;
    int64_t ignore_every = 0;
    bool i32 = false, transposed = false;
  };
  auto opts = [](Reduction r, double eps = 0, double z = 0, int64_t ignore = -100) {
    CrossEntropyOptions o;
    o.reduction = r;
    o.label_smoothing = eps;
    o.z_loss = z;
    o.ignore_index = ignore;
    return o;
  };
  std::vector<C> cfgs = {
      {"V1_mean", 3, 1, opts(Reduction::Mean)},
      {"V7_mean", 5, 7, opts(Reduction::Mean)},
      {"V37_sum", 4, 37, opts(Reduction::Sum)},
      {"V101_none", 3, 101, opts(Reduction::None)},
      {"V7_single_row_mean", 1, 7, opts(Reduction::Mean)},
      {"V7_ignore_mean", 7, 7, opts(Reduction::Mean), 3},
      {"V7_ignore_none", 7, 7, opts(Reduction::None), 3},
      {"V13_ignore_index3_sum", 6, 13, opts(Reduction::Sum, 0, 0, 3), 2},
      {"V11_all_ignored_mean", 3, 11, opts(Reduction::Mean), 1},
      {"V37_smooth0.1_mean", 5, 37, opts(Reduction::Mean, 0.1), 4},
      {"V7_smooth0.1_none", 4, 7, opts(Reduction::None, 0.1)},
      {"V37_zloss_mean", 5, 37, opts(Reduction::Mean, 0, 1e-2), 4},
      {"V13_smooth_zloss_sum", 5, 13, opts(Reduction::Sum, 0.1, 1e-2), 3},
      {"V37_i32_mean", 6, 37, opts(Reduction::Mean), 0, true},
      {"V7_i32_ignore_none", 5, 7, opts(Reduction::None), 2, true},
      {"V13_transposed_mean", 5, 13, opts(Reduction::Mean), 0, false, true},
      {"V13_transposed_smooth_sum", 4, 13, opts(Reduction::Sum, 0.1, 1e-2), 3, false, true},
      // Longer than one online-softmax chunk (2048) and one lane block: exercises the rescaling.
      {"V2503_smooth_zloss_mean", 3, 2503, opts(Reduction::Mean, 0.1, 1e-2)},
  };
  for (const auto& cfg : cfgs) {
    OpCase c;
    c.kind = OpKind::CrossEntropy;
    c.name = "cross_entropy_N" + std::to_string(cfg.N) + "_" + cfg.name;
    c.inputs = [cfg](Generator& g, DType dt) {
      Shape s = cfg.transposed ? Shape{cfg.V, cfg.N} : Shape{cfg.N, cfg.V};
      Tensor x = randn(g, s, dt, 2.0);
      // ignore_every == 1: every row ignored.
      Tensor t = cfg.ignore_every == 1
                     ? Tensor::full({cfg.N}, double(cfg.opt.ignore_index), cfg.i32 ? DType::I32 : DType::I64)
                     : targets(g, cfg.N, cfg.V, cfg.ignore_every, cfg.opt.ignore_index, cfg.i32);
      return std::vector<Tensor>{x, t};
    };
    c.fn = [cfg](const std::vector<Tensor>& in) {
      Tensor x = cfg.transposed ? in[0].transpose(0, 1) : in[0];
      return cross_entropy(x, in[1], cfg.opt);
    };
    cs.push_back(c);
  }
  return cs;
}

// ---- embedding ----
std::vector<OpCase> embedding_cases() {
  std::vector<OpCase> cs;
  struct E {
    std::string name;
    int64_t V, C;
    std::vector<int64_t> ids;
    Shape ids_shape;
    bool i32 = false, transposed = false;
  };
  std::vector<E> es = {
      {"V1_C1_ids5_all_zero", 1, 1, {0, 0, 0, 0, 0}, {5}},
      {"V11_C4_ids2x3_repeated", 11, 4, {3, 7, 3, 0, 10, 3}, {2, 3}},
      {"V37_C5_ids7_i32", 37, 5, {36, 1, 1, 20, 36, 5, 1}, {7}, true},
      {"V7_C3_scalar_id", 7, 3, {4}, {}},
      {"V13_C6_transposed_weight", 13, 6, {12, 0, 6, 6, 2}, {5}, false, true},
      {"V5_C2_ids_empty", 5, 2, {}, {0}},
  };
  for (const auto& e : es) {
    OpCase c;
    c.kind = OpKind::Embedding;
    c.name = "embedding_" + e.name;
    c.inputs = [e](Generator& g, DType dt) {
      Tensor w = randn(g, e.transposed ? Shape{e.C, e.V} : Shape{e.V, e.C}, dt);
      Tensor ids = e.i32 ? Tensor::from_vector(std::vector<int32_t>(e.ids.begin(), e.ids.end()), e.ids_shape)
                         : Tensor::from_vector(e.ids, e.ids_shape);
      return std::vector<Tensor>{w, ids};
    };
    c.fn = [e](const std::vector<Tensor>& in) {
      return embedding(e.transposed ? in[0].transpose(0, 1) : in[0], in[1]);
    };
    cs.push_back(c);
  }
  return cs;
}

// ---- dropout ----
std::vector<OpCase> dropout_cases() {
  std::vector<OpCase> cs;
  struct D {
    std::string name;
    Shape s;
    double p;
    bool training, transposed;
  };
  std::vector<D> ds = {{"p0.3_7x13", {7, 13}, 0.3, true, false},   {"p0.3_1", {1}, 0.3, true, false},
                       {"p0.5_transposed_5x3", {5, 3}, 0.5, true, true}, {"p0.3_37", {37}, 0.3, true, false},
                       {"p0_identity", {4, 5}, 0.0, true, false},     {"p1_all_dropped", {3, 4}, 1.0, true, false},
                       {"eval_identity", {4, 5}, 0.3, false, false}};
  for (const auto& d : ds) {
    OpCase c;
    c.kind = OpKind::Dropout;
    c.name = "dropout_" + d.name;
    Shape in = d.s;
    if (d.transposed) std::swap(in.front(), in.back());
    c.inputs = [in](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, in, dt)}; };
    c.fn = [d](const std::vector<Tensor>& x) {
      Generator gen(77);  // fresh per call: the same mask for every evaluation of the case
      return dropout(d.transposed ? x[0].transpose(0, 1) : x[0], d.p, d.training, gen);
    };
    cs.push_back(c);
  }
  return cs;
}

LMLAB_OP_CASES(softmax_cases());
LMLAB_OP_CASES(cross_entropy_cases());
LMLAB_OP_CASES(embedding_cases());
LMLAB_OP_CASES(dropout_cases());

}  // namespace
}  // namespace lmlab::test
