// Op-table cases: concat/stack/split/chunk, gather/scatter_add/index_select/index_add/one_hot, sort/argsort/topk,
// cumsum/tril/triu. Sizes 1, odd and prime; transposed (non-contiguous) inputs; i32 and i64 indices
// with repeats; ops returning several tensors are folded into one differentiable output.
#include <cmath>

#include "tests/ops/op_table.h"

namespace lmlab::test {
namespace {

using In = std::function<std::vector<Tensor>(Generator&, DType)>;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Integer indices in [0, hi) of dtype idt (i32/i64); repeats are likely when numel > hi.
Tensor rand_index(Generator& g, const Shape& s, int64_t hi, DType idt) {
  std::vector<int64_t> v(size_t(numel_of(s)));
  for (auto& x : v) x = g.randint(0, hi);
  return Tensor::from_vector(v, s).to(idt);
}

// Values at least 0.2 apart (a shuffled grid plus jitter): sort/topk gradients need no ties.
Tensor distinct(Generator& g, const Shape& s, DType dt) {
  int64_t n = numel_of(s);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 0.3 * double(i - n / 2);
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[size_t(i)], v[size_t(g.randint(0, i + 1))]);
  for (auto& x : v) x += 0.1 * g.uniform();
  return Tensor::from_vector(v, s).to(dt);
}

// Shape with the first and last dims swapped: the input to feed a transpose(0, -1) view.
Shape swapped(Shape s) {
  std::swap(s.front(), s.back());
  return s;
}
Tensor maybe_t(const Tensor& x, bool t) { return t ? x.transpose(0, -1) : x; }

OpCase make(OpKind k, std::string name, In in, Fn fn, bool grad = true) {
  OpCase c;
  c.kind = k;
  c.name = std::move(name);
  c.inputs = std::move(in);
  c.fn = std::move(fn);
  c.grad = grad;
  return c;
}

// Several outputs -> one: concat of the pieces scaled by 1, 2, 3, ... (so a swapped piece shows).
Tensor fold(const std::vector<Tensor>& parts, int64_t dim) {
  std::vector<Tensor> scaled;
  for (size_t k = 0; k < parts.size(); ++k) scaled.push_back(mul(parts[k], double(k + 1)));
  return concat(scaled, dim);
}

// values * (indices + 1): compares both outputs of sort/topk and keeps the values' gradient.
Tensor fold_sorted(const std::pair<Tensor, Tensor>& r) { return mul(r.first, add(r.second.to(r.first.dtype()), 1.0)); }

std::vector<OpCase> join_cases() {
  std::vector<OpCase> cs;
  struct C {
    std::vector<Shape> shapes;
    int64_t dim;
    bool t;
  };
  for (const C& c : std::vector<C>{{{{2, 5}, {1, 5}, {3, 5}}, 0, false},
                                   {{{2, 3, 4}, {2, 1, 4}, {2, 5, 4}}, 1, false},
                                   {{{4, 3}, {1, 3}, {2, 3}}, -1, true},
                                   {{{1}}, 0, false},
                                   {{{1, 13}, {1, 13}}, 0, false},
                                   {{{3, 7, 2}, {3, 7, 2}, {3, 7, 2}}, 1, true}}) {
    std::string n = "concat_dim" + std::to_string(c.dim) + (c.t ? "_T" : "");
    for (const auto& s : c.shapes) n += "_" + shape_str(s);
    In in = [c](Generator& g, DType dt) {
      std::vector<Tensor> xs;
      for (const auto& s : c.shapes) xs.push_back(randn(g, s, dt));
      return xs;
    };
    cs.push_back(make(OpKind::Concat, n, in, [c](const std::vector<Tensor>& xs) {
      std::vector<Tensor> v;
      for (const auto& x : xs) v.push_back(maybe_t(x, c.t));
      return concat(v, c.dim);
    }));
  }
  struct S {
    Shape s;
    int64_t count, dim;
    bool t;
  };
  for (const S& c :
       std::vector<S>{{{3, 5}, 3, 0, false}, {{2, 3}, 3, 1, false}, {{5, 3}, 2, -1, true}, {{1}, 1, 0, false}}) {
    std::string n =
        "stack_" + std::to_string(c.count) + "x" + shape_str(c.s) + "_dim" + std::to_string(c.dim) + (c.t ? "_T" : "");
    In in = [c](Generator& g, DType dt) {
      std::vector<Tensor> xs;
      for (int64_t k = 0; k < c.count; ++k) xs.push_back(randn(g, c.s, dt));
      return xs;
    };
    cs.push_back(make(OpKind::Stack, n, in, [c](const std::vector<Tensor>& xs) {
      std::vector<Tensor> v;
      for (const auto& x : xs) v.push_back(maybe_t(x, c.t));
      return stack(v, c.dim);
    }));
  }
  // split by size, by size list, and chunk; the input shape is the one the op sees.
  struct P {
    OpKind k;
    Shape s;
    int64_t dim;
    bool t;
    std::vector<int64_t> sizes;
    int64_t arg;
  };
  for (const P& c : std::vector<P>{{OpKind::Split, {7, 3}, 0, false, {}, 2},
                                   {OpKind::Split, {2, 7}, 1, false, {1, 3, 3}, 0},
                                   {OpKind::Split, {4, 5}, -1, true, {}, 3},
                                   {OpKind::Split, {3, 1}, 0, false, {}, 1},
                                   {OpKind::Split, {5, 6}, 0, true, {0, 5}, 0},
                                   {OpKind::Chunk, {7, 3}, 0, false, {}, 3},
                                   {OpKind::Chunk, {5}, 0, false, {}, 4},
                                   {OpKind::Chunk, {4, 6}, 1, true, {}, 2},
                                   {OpKind::Chunk, {1, 2}, 0, false, {}, 5}}) {
    std::string n = std::string(c.k == OpKind::Split ? "split" : "chunk") + "_" + shape_str(c.s) + "_dim" +
                    std::to_string(c.dim) + (c.t ? "_T" : "") +
                    (c.sizes.empty() ? "_" + std::to_string(c.arg) : "_sizes" + shape_str(c.sizes));
    Shape in_shape = c.t ? swapped(c.s) : c.s;
    cs.push_back(make(
        c.k, n, [in_shape](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, in_shape, dt)}; },
        [c](const std::vector<Tensor>& xs) {
          Tensor x = maybe_t(xs[0], c.t);
          std::vector<Tensor> parts = c.k == OpKind::Chunk ? chunk(x, c.arg, c.dim)
                                      : c.sizes.empty()    ? split(x, c.arg, c.dim)
                                                           : split(x, c.sizes, c.dim);
          return fold(parts, c.dim);
        }));
  }
  return cs;
}

std::vector<OpCase> index_cases() {
  std::vector<OpCase> cs;
  // gather: x shape (as the op sees it), dim, index shape, index dtype, transposed x.
  struct G {
    Shape x;
    int64_t dim;
    Shape idx;
    DType idt;
    bool t;
  };
  for (const G& c : std::vector<G>{{{5, 7}, 1, {5, 3}, DType::I64, false},
                                   {{4, 6}, 0, {9, 6}, DType::I32, false},
                                   {{3, 5, 4}, 1, {2, 8, 3}, DType::I64, false},
                                   {{4, 6}, 0, {3, 5}, DType::I32, true},
                                   {{1}, 0, {1}, DType::I64, false},
                                   {{2, 13}, -1, {2, 13}, DType::I64, false},
                                   {{3, 4, 5}, 2, {3, 4, 6}, DType::I32, true}}) {
    std::string n = "gather_" + shape_str(c.x) + "_dim" + std::to_string(c.dim) + "_idx" + shape_str(c.idx) + "_" +
                    dtype_name(c.idt) + (c.t ? "_T" : "");
    Shape xs = c.t ? swapped(c.x) : c.x;
    int64_t hi = c.x[size_t(c.dim < 0 ? c.dim + int64_t(c.x.size()) : c.dim)];
    cs.push_back(make(
        OpKind::Gather, n,
        [c, xs, hi](Generator& g, DType dt) {
          return std::vector<Tensor>{randn(g, xs, dt), rand_index(g, c.idx, hi, c.idt)};
        },
        [c](const std::vector<Tensor>& in) { return gather(maybe_t(in[0], c.t), c.dim, in[1]); }));
  }
  // scatter_add: x, dim, index, src shapes; repeated indices accumulate.
  struct S {
    Shape x;
    int64_t dim;
    Shape idx, src;
    DType idt;
    bool t;
  };
  for (const S& c : std::vector<S>{{{5, 4}, 0, {7, 4}, {7, 4}, DType::I64, false},
                                   {{3, 5}, 1, {3, 11}, {3, 11}, DType::I32, false},
                                   {{4, 6}, 1, {3, 5}, {4, 7}, DType::I64, false},
                                   {{3, 6}, 1, {3, 4}, {3, 4}, DType::I32, true},
                                   {{2, 3, 5}, 1, {2, 7, 5}, {2, 7, 5}, DType::I64, false},
                                   {{1}, 0, {1}, {1}, DType::I64, false},
                                   {{3, 4, 5}, 2, {3, 2, 7}, {3, 4, 7}, DType::I64, true}}) {
    std::string n = "scatter_add_" + shape_str(c.x) + "_dim" + std::to_string(c.dim) + "_idx" + shape_str(c.idx) +
                    "_src" + shape_str(c.src) + "_" + dtype_name(c.idt) + (c.t ? "_T" : "");
    Shape xs = c.t ? swapped(c.x) : c.x, ss = c.t ? swapped(c.src) : c.src;
    int64_t hi = c.x[size_t(c.dim)];
    // with t, the transposed 3-D operands have leading dims that don't collapse (offset tables)
    cs.push_back(make(
        OpKind::ScatterAdd, n,
        [c, xs, ss, hi](Generator& g, DType dt) {
          return std::vector<Tensor>{randn(g, xs, dt), rand_index(g, c.idx, hi, c.idt), randn(g, ss, dt)};
        },
        [c](const std::vector<Tensor>& in) {
          return scatter_add(maybe_t(in[0], c.t), c.dim, in[1], maybe_t(in[2], c.t));
        }));
  }
  struct I {
    Shape x;
    int64_t dim;
    int64_t k;
    DType idt;
    bool t;
  };
  for (const I& c : std::vector<I>{{{7, 5}, 0, 9, DType::I64, false},
                                   {{4, 6}, 1, 5, DType::I32, true},
                                   {{3, 5, 4}, 1, 7, DType::I64, false},
                                   {{1}, 0, 1, DType::I32, false},
                                   {{2, 13}, -1, 13, DType::I64, false}}) {
    std::string n = "index_select_" + shape_str(c.x) + "_dim" + std::to_string(c.dim) + "_k" + std::to_string(c.k) +
                    "_" + dtype_name(c.idt) + (c.t ? "_T" : "");
    Shape xs = c.t ? swapped(c.x) : c.x;
    int64_t hi = c.x[size_t(c.dim < 0 ? c.dim + int64_t(c.x.size()) : c.dim)];
    cs.push_back(make(
        OpKind::IndexSelect, n,
        [c, xs, hi](Generator& g, DType dt) {
          return std::vector<Tensor>{randn(g, xs, dt), rand_index(g, {c.k}, hi, c.idt)};
        },
        [c](const std::vector<Tensor>& in) { return index_select(maybe_t(in[0], c.t), c.dim, in[1]); }));
  }
  // index_add: x, dim, K (src is x with K along dim); repeated indices accumulate.
  for (const I& c : std::vector<I>{{{7, 5}, 0, 11, DType::I64, false},
                                   {{4, 6}, 1, 5, DType::I32, true},
                                   {{3, 5, 4}, 1, 7, DType::I64, false},
                                   {{1}, 0, 3, DType::I32, false},
                                   {{2, 13}, -1, 2, DType::I64, false}}) {
    std::string n = "index_add_" + shape_str(c.x) + "_dim" + std::to_string(c.dim) + "_k" + std::to_string(c.k) +
                    "_" + dtype_name(c.idt) + (c.t ? "_T" : "");
    int64_t d = c.dim < 0 ? c.dim + int64_t(c.x.size()) : c.dim;
    Shape src = c.x;
    src[size_t(d)] = c.k;
    Shape xs = c.t ? swapped(c.x) : c.x, ss = c.t ? swapped(src) : src;
    int64_t hi = c.x[size_t(d)];
    cs.push_back(make(
        OpKind::IndexAdd, n,
        [c, xs, ss, hi](Generator& g, DType dt) {
          return std::vector<Tensor>{randn(g, xs, dt), rand_index(g, {c.k}, hi, c.idt), randn(g, ss, dt)};
        },
        [c](const std::vector<Tensor>& in) {
          return index_add(maybe_t(in[0], c.t), c.dim, in[1], maybe_t(in[2], c.t));
        }));
  }
  struct H {
    Shape idx;
    int64_t C;
    DType idt;
    DType out;
  };
  for (const H& c : std::vector<H>{
           {{7}, 5, DType::I64, DType::I64}, {{3, 4}, 7, DType::I32, DType::F32}, {{1}, 1, DType::I64, DType::F64}}) {
    std::string n = "one_hot_" + shape_str(c.idx) + "_C" + std::to_string(c.C) + "_" + dtype_name(c.idt) + "_to_" +
                    dtype_name(c.out);
    cs.push_back(make(
        OpKind::OneHot, n, [c](Generator& g, DType) { return std::vector<Tensor>{rand_index(g, c.idx, c.C, c.idt)}; },
        [c](const std::vector<Tensor>& in) { return one_hot(in[0], c.C, c.out); }, false));
  }
  return cs;
}

std::vector<OpCase> sort_cases() {
  std::vector<OpCase> cs;
  struct S {
    Shape s;
    int64_t dim;
    bool flag;  // descending (sort) / largest (topk)
    bool t;
    int64_t k;
  };
  for (const S& c : std::vector<S>{{{7}, 0, false, false, 0},
                                   {{4, 9}, -1, true, false, 0},
                                   {{5, 9}, 0, false, true, 0},
                                   {{3, 5, 4}, 1, true, false, 0},
                                   {{1}, 0, false, false, 0}}) {
    std::string n =
        "sort_" + shape_str(c.s) + "_dim" + std::to_string(c.dim) + (c.flag ? "_desc" : "") + (c.t ? "_T" : "");
    Shape in_shape = c.t ? swapped(c.s) : c.s;
    In in = [in_shape](Generator& g, DType dt) { return std::vector<Tensor>{distinct(g, in_shape, dt)}; };
    cs.push_back(make(OpKind::Sort, n, in, [c](const std::vector<Tensor>& xs) {
      return fold_sorted(sort(maybe_t(xs[0], c.t), c.dim, c.flag));
    }));
    cs.push_back(make(
        OpKind::Argsort, "arg" + n, in,
        [c](const std::vector<Tensor>& xs) { return argsort(maybe_t(xs[0], c.t), c.dim, c.flag); }, false));
  }
  // Ties and NaNs: fast and reference must agree on the stable order and on NaN placement.
  for (bool desc : {false, true}) {
    std::string sfx = desc ? "_desc" : "";
    cs.push_back(make(
        OpKind::Argsort, "argsort_ties_[5, 11]" + sfx,
        [](Generator& g, DType dt) {
          auto v = randn(g, {5, 11}, DType::F64).to_vector<double>();
          for (auto& x : v) x = std::round(2 * x) / 2;
          return std::vector<Tensor>{Tensor::from_vector(v, {5, 11}).to(dt)};
        },
        [desc](const std::vector<Tensor>& xs) { return argsort(xs[0], 1, desc); }, false));
    cs.push_back(make(
        OpKind::Argsort, "argsort_nan_[3, 13]" + sfx,
        [](Generator& g, DType dt) {
          auto v = randn(g, {3, 13}, DType::F64).to_vector<double>();
          for (size_t i = 0; i < v.size(); i += 4) v[i] = NAN;
          v[1] = -0.0;
          v[2] = 0.0;
          v[5] = -INFINITY;
          v[6] = INFINITY;
          return std::vector<Tensor>{Tensor::from_vector(v, {3, 13}).to(dt)};
        },
        [desc](const std::vector<Tensor>& xs) { return argsort(xs[0], -1, desc); }, false));
  }
  for (const S& c : std::vector<S>{{{4, 9}, -1, true, false, 1},
                                   {{4, 9}, -1, true, false, 9},
                                   {{3, 13}, 1, false, false, 3},
                                   {{7, 5}, 0, true, true, 2},
                                   {{3, 5, 4}, 1, false, false, 5},
                                   {{1}, 0, true, false, 1},
                                   {{2, 31}, -1, true, false, 4}}) {
    std::string n = "topk_" + shape_str(c.s) + "_dim" + std::to_string(c.dim) + "_k" + std::to_string(c.k) +
                    (c.flag ? "_largest" : "_smallest") + (c.t ? "_T" : "");
    Shape in_shape = c.t ? swapped(c.s) : c.s;
    cs.push_back(make(
        OpKind::Topk, n, [in_shape](Generator& g, DType dt) { return std::vector<Tensor>{distinct(g, in_shape, dt)}; },
        [c](const std::vector<Tensor>& xs) { return fold_sorted(topk(maybe_t(xs[0], c.t), c.k, c.dim, c.flag)); }));
  }
  return cs;
}

std::vector<OpCase> scan_cases() {
  std::vector<OpCase> cs;
  struct C {
    Shape s;
    int64_t dim;
    bool t;
  };
  for (const C& c : std::vector<C>{{{7}, 0, false},
                                   {{5, 13}, 1, false},
                                   {{13, 5}, 0, false},
                                   {{5, 4, 3}, 1, true},
                                   {{1}, 0, false},
                                   {{2, 3, 1}, -1, false}}) {
    std::string n = "cumsum_" + shape_str(c.s) + "_dim" + std::to_string(c.dim) + (c.t ? "_T" : "");
    Shape in_shape = c.t ? swapped(c.s) : c.s;
    cs.push_back(make(
        OpKind::Cumsum, n, [in_shape](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, in_shape, dt)}; },
        [c](const std::vector<Tensor>& xs) { return cumsum(maybe_t(xs[0], c.t), c.dim); }));
  }
  struct T {
    Shape s;
    int64_t diag;
    bool t;
  };
  for (const T& c : std::vector<T>{{{5, 7}, 0, false},
                                   {{3, 4, 6}, -1, false},
                                   {{3, 4, 6}, 1, false},
                                   {{6, 4}, 2, true},
                                   {{4, 6}, -2, true},
                                   {{1, 1}, 0, false},
                                   {{3, 5}, 9, false}}) {
    for (bool lower : {true, false}) {
      std::string n = std::string(lower ? "tril_" : "triu_") + shape_str(c.s) + "_diag" + std::to_string(c.diag) +
                      (c.t ? "_T" : "");
      Shape in_shape = c.t ? swapped(c.s) : c.s;
      cs.push_back(make(
          lower ? OpKind::Tril : OpKind::Triu, n,
          [in_shape](Generator& g, DType dt) { return std::vector<Tensor>{randn(g, in_shape, dt)}; },
          [c, lower](const std::vector<Tensor>& xs) {
            Tensor x = maybe_t(xs[0], c.t);
            return lower ? tril(x, c.diag) : triu(x, c.diag);
          }));
    }
  }
  return cs;
}

LMLAB_OP_CASES(join_cases());
LMLAB_OP_CASES(index_cases());
LMLAB_OP_CASES(sort_cases());
LMLAB_OP_CASES(scan_cases());

}  // namespace
}  // namespace lmlab::test
