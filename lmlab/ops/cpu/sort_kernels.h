// Fast CPU kernel for sort/argsort/topk (ops/sort.cpp): rows sorted independently, OpenMP over rows.
#pragma once
#include <cstdint>

#include "lmlab/core/dtype.h"

namespace lmlab::cpu {

// x [R, n] contiguous f32/f64 rows -> values [R, k] (dt) and indices [R, k]: the first k entries of
// each row's stable sort (ascending, or descending), with NaN ordered as the largest value.
void sort_rows(DType dt, const void* x, int64_t R, int64_t n, int64_t k, bool descending, void* values,
               int64_t* indices);

}  // namespace lmlab::cpu
