// Checks Transformer::forward_rows (continuous batching) against feeding each row alone: rows at
// different cache lengths (one empty, one a fork sharing another's cache), two steps in a row, T = 1
// and T = 3. Used by the model tests of every mixer kind and of quantized files.
#pragma once
#include <gtest/gtest.h>

#include <vector>

#include "lmlab/infer/state.h"
#include "lmlab/models/transformer.h"
#include "tests/test_util.h"

namespace lmlab::test {

// rel_tol scales by the largest logit.
inline void expect_rows_match_alone(const Transformer& m, double rel_tol) {
  NoGrad ng;
  const int64_t V = m.cfg.vocab_size;
  auto tok = [&](int64_t i) { return (i * 7 + 3) % V; };
  // Starting states: prompts of 5, 2 and 0 tokens, and a fork of the first.
  std::vector<InferState> start;
  for (int64_t len : {5, 2, 0}) {
    InferState st(m);
    if (len > 0) {
      std::vector<int64_t> ids;
      for (int64_t i = 0; i < len; ++i) ids.push_back(tok(i + len));
      m.forward(Tensor::from_vector(ids, {1, len}), &st.cache);
      st.tokens = ids;
    }
    start.push_back(std::move(st));
  }
  start.push_back(start[0].fork());
  const int64_t B = int64_t(start.size());
  for (int64_t T : {1, 3}) {
    SCOPED_TRACE("T = " + std::to_string(T));
    std::vector<InferState> alone, rows;
    for (const auto& s : start) alone.push_back(s.fork()), rows.push_back(s.fork());
    for (int step = 0; step < 2; ++step) {
      std::vector<int64_t> ids;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t) ids.push_back(tok(11 * b + 5 * t + step + 1));
      std::vector<CacheSet*> caches;
      for (auto& r : rows) caches.push_back(&r.cache);
      Tensor batched = m.forward_rows(Tensor::from_vector(ids, {B, T}), caches);  // [B, T, V]
      ASSERT_EQ(batched.shape(), (Shape{B, T, V}));
      for (int64_t b = 0; b < B; ++b) {
        std::vector<int64_t> row(ids.begin() + b * T, ids.begin() + (b + 1) * T);
        auto want = m.forward(Tensor::from_vector(row, {1, T}), &alone[size_t(b)].cache).contiguous().to_vector<float>();
        auto got = batched.select(0, b).contiguous().to_vector<float>();
        EXPECT_LE(max_abs_diff(got, want), rel_tol * std::max(1.0, max_abs(want))) << "row " << b << " step " << step;
        EXPECT_EQ(rows[size_t(b)].cache.length(), alone[size_t(b)].cache.length()) << "row " << b;
      }
    }
  }
  // The fork's writes never reached the state it was forked from.
  EXPECT_EQ(start[0].cache.length(), 5);
}

}  // namespace lmlab::test
