// Fast CPU kernel for concat (ops/join.cpp): the output is viewed as [O, total] bytes and each
// contiguous input as [O, width_k] bytes, so every copy is one memcpy of a whole row block.
#pragma once
#include <cstdint>
#include <vector>

namespace lmlab::cpu {

// out [O, sum(widths)] bytes; src k [O, widths[k]] bytes, contiguous. Parallel over (row, input).
void concat_rows(const std::vector<const uint8_t*>& srcs, const std::vector<int64_t>& widths, uint8_t* out,
                 int64_t O);

}  // namespace lmlab::cpu
