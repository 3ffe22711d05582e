// Join, index, sort and scan ops: every validation error (type, message naming op and values), plus
// semantic checks against hand-computed results: stable sort, NaN placement, topk = sort prefix,
// cumsum of ones, gather by argsort = sort, scatter_add accumulation, torch's split/chunk sizing.
#include <gtest/gtest.h>

#include <cmath>

#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;

namespace {

using lmlab::test::expect_error;

Tensor i64(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }
Tensor i64(const std::vector<int64_t>& v) { return Tensor::from_vector(v); }
Tensor f64(const std::vector<double>& v) { return Tensor::from_vector(v); }

// Runs `f` in fast mode and in reference mode.
template <class F>
void both_modes(F&& f) {
  for (bool ref : {false, true}) {
    SCOPED_TRACE(ref ? "reference mode" : "fast mode");
    ReferenceMode rm(ref);
    f();
  }
}

void expect_same(const Tensor& a, const Tensor& b, double tol = 0) {
  auto r = compare("result", a, b, tol, tol);
  EXPECT_TRUE(r.ok) << r.message;
}

}  // namespace

TEST(IndexOpsErrors, ConcatStack) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({2, 4});
  expect_error<ValueError>([&] { concat({}); }, "[concat] expected a non-empty list of tensors");
  expect_error<DTypeError>(
      [&] {
        concat({a, Tensor::zeros({2, 3}, DType::F64)});
      },
      "[concat] tensor 1 has dtype f64, expected f32 (tensor 0)");
  expect_error<ShapeError>(
      [&] {
        concat({a, Tensor::zeros({2, 3, 1})});
      },
      "[concat] tensor 1 [2, 3, 1] has a different rank");
  expect_error<ShapeError>(
      [&] {
        concat({a, b}, 0);
      },
      "[concat] tensor 1 [2, 4] differs from tensor 0 [2, 3] in dim 1");
  expect_error<IndexError>([&] { concat({a, b}, 2); }, "[concat] dim out of range");
  expect_error<ShapeError>([&] { concat({Tensor::scalar(1.0)}); }, "[concat] zero-dimensional tensor");
  expect_error<ValueError>([&] { concat({a, Tensor()}); }, "[concat] tensor 1 is undefined");
  expect_error<ValueError>([&] { stack({}); }, "[stack] expected a non-empty list");
  expect_error<ShapeError>([&] { stack({a, b}); }, "[stack] tensor 1 has shape [2, 4], expected [2, 3] (tensor 0)");
  expect_error<DTypeError>([&] { stack({a, Tensor::zeros({2, 3}, DType::I64)}); }, "[stack] tensor 1 has dtype i64");
  expect_error<IndexError>([&] { stack({a, a}, 3); }, "[stack] dim out of range");
}

TEST(IndexOpsErrors, SplitChunk) {
  Tensor x = Tensor::zeros({5, 3});
  expect_error<ShapeError>(
      [&] {
        split(x, std::vector<int64_t>{2, 2}, 0);
      },
      "[split] split sizes [2, 2] sum to 4, expected the size of dim 0 of [5, 3] (5)");
  expect_error<ValueError>(
      [&] {
        split(x, std::vector<int64_t>{6, -1}, 0);
      },
      "[split] split sizes must be non-negative");
  expect_error<ValueError>([&] { split(x, 0, 0); }, "[split] split_size must be positive");
  expect_error<ValueError>([&] { split(x, -2, 1); }, "[split] split_size must be positive");
  expect_error<IndexError>([&] { split(x, 2, 2); }, "[split] dim out of range");
  expect_error<ShapeError>([&] { split(Tensor::scalar(1.0), 1, 0); }, "[split] cannot split a zero-dimensional tensor");
  expect_error<ValueError>([&] { chunk(x, 0); }, "[chunk] number of chunks must be positive, got 0");
}

TEST(IndexOpsErrors, GatherScatter) {
  Tensor x = Tensor::zeros({3, 4});
  expect_error<ShapeError>(
      [&] {
        gather(x, 1, i64({0, 1}, {2}));
      },
      "[gather] index [2] must have the same rank as x [3, 4]");
  expect_error<ShapeError>(
      [&] {
        gather(x, 1, Tensor::zeros({4, 2}, DType::I64));
      },
      "[gather] index [4, 2] is larger than x [3, 4] in dim 0");
  expect_error<IndexError>(
      [&] {
        gather(x, 1, i64({0, 4}, {1, 2}));
      },
      "[gather] index 4 out of range for dim 1 of size 4");
  expect_error<IndexError>(
      [&] {
        gather(x, 0, i64({0, -1}, {1, 2}));
      },
      "[gather] index -1 out of range for dim 0 of size 3");
  expect_error<DTypeError>(
      [&] {
        gather(x, 0, Tensor::zeros({1, 2}));
      },
      "[gather] argument 'index' must be an index tensor (i64 or i32), got f32");
  expect_error<IndexError>([&] { gather(x, 2, Tensor::zeros({1, 2}, DType::I64)); }, "[gather] dim out of range");

  Tensor idx = i64({0, 2, 1}, {1, 3});
  expect_error<DTypeError>(
      [&] {
        scatter_add(x, 1, idx, Tensor::zeros({1, 3}, DType::F64));
      },
      "[scatter_add] dtype mismatch");
  expect_error<DTypeError>(
      [&] {
        scatter_add(Tensor::zeros({3, 4}, DType::I64), 1, idx, Tensor::zeros({1, 3}));
      },
      "[scatter_add] argument 'x' has unsupported dtype i64");
  expect_error<ShapeError>(
      [&] {
        scatter_add(x, 1, idx, Tensor::zeros({1, 2}));
      },
      "[scatter_add] index [1, 3] is larger than src [1, 2] in dim 1");
  expect_error<ShapeError>([&] { scatter_add(x, 1, idx, Tensor::zeros({3})); },
                           "[scatter_add] src [3] must have the same rank as x [3, 4]");
  expect_error<ShapeError>([&] { scatter_add(x, 1, i64({0}, {1}), Tensor::zeros({1})); },
                           "[scatter_add] index [1] must have the same rank as x [3, 4]");
  expect_error<IndexError>(
      [&] {
        scatter_add(x, 0, i64({0, 3, 1}, {1, 3}), Tensor::zeros({1, 3}));
      },
      "[scatter_add] index 3 out of range for dim 0 of size 3");
  expect_error<IndexError>(
      [&] {
        scatter_add(x, 1, i64({0, -2}, {1, 2}), Tensor::zeros({1, 2}));
      },
      "[scatter_add] index -2 out of range");
  expect_error<DTypeError>(
      [&] {
        scatter_add(x, 1, Tensor::zeros({1, 3}, DType::F64), Tensor::zeros({1, 3}));
      },
      "[scatter_add] argument 'index' must be an index tensor");
}

TEST(IndexOpsErrors, IndexSelectOneHot) {
  Tensor x = Tensor::zeros({4, 2});
  expect_error<IndexError>(
      [&] {
        index_select(x, 0, i64({1, 9}));
      },
      "[index_select] index 9 out of range for dim 0 of size 4");
  expect_error<IndexError>([&] { index_select(x, 1, i64({-1})); },
                           "[index_select] index -1 out of range for dim 1 of size 2");
  expect_error<ShapeError>(
      [&] {
        index_select(x, 0, i64({0, 1}, {1, 2}));
      },
      "[index_select] index must be 1-D, got [1, 2]");
  expect_error<DTypeError>([&] { index_select(x, 0, Tensor::zeros({2})); },
                           "[index_select] argument 'index' must be an index tensor");
  expect_error<IndexError>([&] { index_select(x, -3, i64({0})); }, "[index_select] dim out of range");

  Tensor src = Tensor::zeros({2, 2});
  expect_error<IndexError>([&] { index_add(x, 0, i64({1, 4}), src); },
                           "[index_add] index 4 out of range for dim 0 of size 4");
  expect_error<ShapeError>([&] { index_add(x, 0, i64({1, 2, 3}), src); },
                           "[index_add] src must have shape [3, 2] (x [4, 2] with 3 index entries along dim 0), got [2, 2]");
  expect_error<ShapeError>([&] { index_add(x, 0, i64({0, 1}, {1, 2}), src); }, "[index_add] index must be 1-D");
  expect_error<DTypeError>([&] { index_add(x, 0, i64({0, 1}), Tensor::zeros({2, 2}, DType::F64)); },
                           "[index_add] dtype mismatch");
  expect_error<DTypeError>([&] { index_add(x, 0, Tensor::zeros({2}), src); },
                           "[index_add] argument 'index' must be an index tensor");

  expect_error<IndexError>([&] { one_hot(i64({0, -1, 2}), 3); }, "[one_hot] class index -1 is negative");
  expect_error<IndexError>([&] { one_hot(i64({0, 3}), 3); }, "[one_hot] class index 3 out of range for 3 classes");
  expect_error<DTypeError>([&] { one_hot(Tensor::zeros({2}), 3); },
                           "[one_hot] argument 'index' must be an index tensor");
  expect_error<ValueError>([&] { one_hot(i64({0}), -4); }, "[one_hot] num_classes must be non-negative or -1");
  expect_error<ValueError>([&] { one_hot(Tensor::zeros({0}, DType::I64), -1); }, "[one_hot] cannot infer num_classes");
}

TEST(IndexOpsErrors, SortScan) {
  Tensor x = Tensor::zeros({3, 4});
  expect_error<ValueError>([&] { topk(x, 5, 1); }, "[topk] k = 5 out of range for dim 1 of size 4");
  expect_error<ValueError>([&] { topk(x, -1, 0); }, "[topk] k = -1 out of range for dim 0 of size 3");
  expect_error<DTypeError>([&] { sort(Tensor::zeros({3}, DType::I64)); },
                           "[sort] argument 'x' has unsupported dtype i64");
  expect_error<DTypeError>([&] { argsort(Tensor::zeros({3}, DType::I32)); },
                           "[argsort] argument 'x' has unsupported dtype");
  expect_error<IndexError>([&] { sort(x, 2); }, "[sort] dim out of range");
  expect_error<IndexError>([&] { topk(x, 1, -3); }, "[topk] dim out of range");
  expect_error<DTypeError>([&] { cumsum(Tensor::zeros({3}, DType::I64), 0); },
                           "[cumsum] argument 'x' has unsupported dtype i64");
  expect_error<IndexError>([&] { cumsum(x, 2); }, "[cumsum] dim out of range");
  expect_error<ShapeError>([&] { tril(Tensor::zeros({5})); }, "[tril] expected a tensor with at least 2 dims, got [5]");
  expect_error<ShapeError>([&] { triu(Tensor::scalar(1.0)); }, "[triu] expected a tensor with at least 2 dims, got []");
}

TEST(IndexOpsSemantics, SortIsStableAndNanIsLargest) {
  both_modes([] {
    Tensor x = f64({1, 0, 1, 0, 1});
    EXPECT_EQ(argsort(x).to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 0, 2, 4}));
    EXPECT_EQ(argsort(x, 0, true).to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 4, 1, 3}));
    Tensor y = Tensor::from_vector(std::vector<float>{NAN, 1.f, -INFINITY, NAN, 0.f, -0.f});
    auto [v, i] = sort(y);
    EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{2, 4, 5, 1, 0, 3}));
    auto vv = v.to_vector<double>();
    EXPECT_EQ(vv[0], -INFINITY);
    EXPECT_TRUE(std::signbit(vv[2]));  // -0.0 kept as is, after the equal +0.0 that came first
    EXPECT_TRUE(std::isnan(vv[4]) && std::isnan(vv[5]));
    auto [vd, id] = sort(y, 0, true);
    EXPECT_EQ(id.to_vector<int64_t>(), (std::vector<int64_t>{0, 3, 1, 4, 5, 2}));
    EXPECT_TRUE(std::isnan(vd.to_vector<double>()[0]));
  });
}

TEST(IndexOpsSemantics, TopkMatchesSortPrefix) {
  Generator g(7);
  // Rounded values: many ties, so the prefix must follow the stable order exactly.
  auto v = Tensor::randn({6, 50}, g, DType::F64).to_vector<double>();
  for (auto& e : v) e = std::round(4 * e) / 4;
  Tensor x = Tensor::from_vector(v, {6, 50}).to(DType::F32);
  both_modes([&] {
    for (bool largest : {true, false}) {
      for (int64_t k : {0, 1, 7, 50}) {
        auto [tv, ti] = topk(x, k, 1, largest);
        auto [sv, si] = sort(x, 1, largest);
        expect_same(tv, sv.narrow(1, 0, k));
        expect_same(ti, si.narrow(1, 0, k));
      }
      // along dim 0 of a transposed view
      Tensor xt = x.transpose(0, 1);
      auto [tv, ti] = topk(xt, 4, 0, largest);
      auto [sv, si] = sort(xt, 0, largest);
      expect_same(ti, si.narrow(0, 0, 4));
      expect_same(tv, sv.narrow(0, 0, 4));
    }
  });
}

TEST(IndexOpsSemantics, CumsumOfOnesIsArangePlusOne) {
  both_modes([] {
    Tensor y = cumsum(Tensor::ones({3, 17}), 1);
    for (int64_t r = 0; r < 3; ++r) expect_same(y.select(0, r), add(Tensor::arange(17).to(DType::F32), 1.0));
    Tensor z = cumsum(Tensor::ones({17, 3}, DType::F64), 0);
    for (int64_t c = 0; c < 3; ++c) expect_same(z.select(1, c), add(Tensor::arange(17).to(DType::F64), 1.0));
    EXPECT_DOUBLE_EQ(cumsum(Tensor::scalar(2.5), 0).item(), 2.5);
  });
}

TEST(IndexOpsSemantics, GatherByArgsortIsSort) {
  Generator g(3);
  Tensor x = Tensor::randn({5, 4, 9}, g, DType::F64);
  both_modes([&] {
    for (int64_t d : {0, 1, 2}) {
      for (bool desc : {false, true}) {
        auto [sv, si] = sort(x, d, desc);
        expect_same(gather(x, d, argsort(x, d, desc)), sv);
        expect_same(gather(x, d, si.to(DType::I32)), sv);
      }
    }
  });
}

TEST(IndexOpsSemantics, ScatterAddAccumulatesAndGathers) {
  both_modes([] {
    Tensor x = f64({10, 20, 30});
    Tensor s = f64({1, 2, 3, 4}).set_requires_grad();
    Tensor xg = x.detach().clone().set_requires_grad();
    Tensor y = scatter_add(xg, 0, i64({0, 0, 2, 0}), s);
    EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{17, 20, 33}));
    EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{10, 20, 30}));  // out-of-place
    sum(mul(y, f64({1, 2, 3}))).backward();
    EXPECT_EQ(s.grad().to_vector<double>(), (std::vector<double>{1, 1, 3, 1}));
    EXPECT_EQ(xg.grad().to_vector<double>(), (std::vector<double>{1, 2, 3}));
    Tensor a = f64({1, 2, 3}).set_requires_grad();
    Tensor b = index_select(a, 0, Tensor::from_vector(std::vector<int32_t>{2, 2, 0}));
    EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{3, 3, 1}));
    sum(b).backward();
    EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1, 0, 2}));
  });
}

TEST(IndexOpsSemantics, IndexAddAccumulatesRepeatsAndSelectsGradients) {
  both_modes([] {
    Tensor x = f64({1, 2, 3, 4, 5, 6}).reshape({3, 2}).set_requires_grad();
    Tensor s = f64({10, 20, 30, 40, 50, 60, 70, 80}).reshape({4, 2}).set_requires_grad();
    Tensor y = index_add(x, 0, i64({2, 0, 2, 2}), s);
    EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{31, 42, 3, 4, 135, 166}));
    EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{1, 2, 3, 4, 5, 6}));  // out-of-place
    sum(mul(y, f64({1, 2, 3, 4, 5, 6}).reshape({3, 2}))).backward();
    EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(s.grad().to_vector<double>(), (std::vector<double>{5, 6, 1, 2, 5, 6, 5, 6}));
  });
}

TEST(IndexOpsSemantics, SplitChunkSizing) {
  auto sizes = [](const std::vector<Tensor>& ts, int64_t d) {
    std::vector<int64_t> s;
    for (const auto& t : ts) s.push_back(t.size(d));
    return s;
  };
  Tensor x = Tensor::zeros({7, 2});
  EXPECT_EQ(sizes(split(x, 3, 0), 0), (std::vector<int64_t>{3, 3, 1}));
  EXPECT_EQ(sizes(split(x, 7, 0), 0), (std::vector<int64_t>{7}));
  EXPECT_EQ(sizes(split(x, 10, 0), 0), (std::vector<int64_t>{7}));
  EXPECT_EQ(sizes(split(x, std::vector<int64_t>{0, 2, 5}, 0), 0), (std::vector<int64_t>{0, 2, 5}));
  EXPECT_EQ(sizes(chunk(Tensor::zeros({5}), 4), 0), (std::vector<int64_t>{2, 2, 1}));  // fewer than asked
  EXPECT_EQ(sizes(chunk(Tensor::zeros({6}), 4), 0), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(sizes(chunk(Tensor::zeros({2, 9}), 3, -1), 1), (std::vector<int64_t>{3, 3, 3}));
  EXPECT_EQ(sizes(chunk(Tensor::zeros({0}), 3), 0), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(sizes(split(Tensor::zeros({0}), 0, 0), 0), (std::vector<int64_t>{0}));
  // pieces are views of x
  Tensor y = Tensor::arange(6).to(DType::F32);
  EXPECT_EQ(split(y, 4)[1].to_vector<double>(), (std::vector<double>{4, 5}));
}

TEST(IndexOpsSemantics, IntegerAndEmptyInputs) {
  both_modes([] {
    Tensor a = i64({1, 2, 3, 4}, {2, 2}), b = i64({5, 6}, {2, 1});
    EXPECT_EQ(concat({a, b}, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 5, 3, 4, 6}));
    EXPECT_EQ(stack({a, a}, 2).shape(), (Shape{2, 2, 2}));
    EXPECT_EQ(stack({a, a}, 2).to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 2, 2, 3, 3, 4, 4}));
    EXPECT_EQ(index_select(a, 1, i64({1, 1, 0})).to_vector<int64_t>(), (std::vector<int64_t>{2, 2, 1, 4, 4, 3}));
    Tensor c = Tensor::from_vector(std::vector<int32_t>{7, 8, 9}, {1, 3});
    EXPECT_EQ(gather(c, 1, i64({2, 0}, {1, 2})).to_vector<int32_t>(), (std::vector<int32_t>{9, 7}));
    EXPECT_EQ(tril(a).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 3, 4}));
    EXPECT_EQ(triu(a, 1).to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 0, 0}));
    EXPECT_EQ(concat({Tensor::zeros({0, 3}), Tensor::ones({2, 3})}).shape(), (Shape{2, 3}));
    EXPECT_EQ(sort(Tensor::zeros({3, 0}), 1).first.shape(), (Shape{3, 0}));
    EXPECT_EQ(topk(Tensor::zeros({3, 5}), 0).second.shape(), (Shape{3, 0}));
    EXPECT_EQ(gather(Tensor::zeros({3, 4}), 1, Tensor::zeros({3, 0}, DType::I64)).shape(), (Shape{3, 0}));
    Tensor oh = one_hot(i64({2, 0}), 3);
    EXPECT_EQ(oh.dtype(), DType::I64);
    EXPECT_EQ(oh.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1, 1, 0, 0}));
    EXPECT_EQ(one_hot(i64({2, 0}), -1, DType::BF16).shape(), (Shape{2, 3}));
    EXPECT_EQ(one_hot(i64({1}), 2, DType::BF16).to_vector<double>(), (std::vector<double>{0, 1}));
    auto [sv, si] = sort(Tensor::scalar(4.0));
    EXPECT_EQ(sv.dim(), 0);
    EXPECT_EQ(si.item(), 0);
  });
}

// Larger shapes than the op table: the tiled/parallel fast paths against the reference kernels.
TEST(IndexOpsSemantics, FastMatchesReferenceOnLargeInputs) {
  Generator g(11);
  Tensor x = Tensor::randn({64, 1001}, g, DType::F32);
  auto idx = [&](const Shape& s, int64_t hi) {
    std::vector<int64_t> v(size_t(numel_of(s)));
    for (auto& e : v) e = g.randint(0, hi);
    return Tensor::from_vector(v, s);
  };
  Tensor i0 = idx({300, 1001}, 64), i1 = idx({64, 2000}, 1001), isel = idx({500}, 64);
  Tensor src0 = Tensor::randn({300, 1001}, g, DType::F32), src1 = Tensor::randn({64, 2000}, g, DType::F32);
  auto run = [&] {
    std::vector<Tensor> out;
    out.push_back(scatter_add(x, 0, i0, src0));
    out.push_back(scatter_add(x, 1, i1, src1));
    out.push_back(gather(x.transpose(0, 1), 1, i0.transpose(0, 1).contiguous()));
    out.push_back(gather(x.reshape({8, 8, 1001}).transpose(0, 1), 2, i1.narrow(1, 0, 999).reshape({8, 8, 999})));
    out.push_back(cumsum(x, 0));
    out.push_back(cumsum(x, 1));
    out.push_back(sort(x, 1, true).first);
    out.push_back(argsort(x, 0).to(DType::F32));
    out.push_back(topk(x, 13, 1).first);
    out.push_back(tril(x, 3));
    out.push_back(concat({x, x.narrow(1, 0, 7), x}, 1));
    Tensor xs = x.detach().clone().set_requires_grad();
    Tensor y = index_select(xs, 0, isel);
    sum(mul(y, y)).backward();
    out.push_back(xs.grad());
    return out;
  };
  std::vector<Tensor> fast = run(), ref;
  {
    ReferenceMode rm;
    ref = run();
  }
  for (size_t i = 0; i < fast.size(); ++i) {
    auto r = compare("output " + std::to_string(i), fast[i], ref[i], 1e-4, 1e-4);
    EXPECT_TRUE(r.ok) << r.message;
  }
}
