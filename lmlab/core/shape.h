// Shapes and strides (in elements), broadcasting rules (NumPy/PyTorch), dim wrapping.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmlab {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel_of(const Shape& s);
Strides contiguous_strides(const Shape& s);
std::string shape_str(const Shape& s);
// Wraps a possibly negative dim into [0, ndim); throws IndexError naming `op` when out of range.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);
// The broadcast of two shapes; throws ShapeError naming `op` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Strides for viewing a tensor (shape/strides) as `target` by broadcasting (0 on expanded dims).
Strides broadcast_strides(const Shape& shape, const Strides& strides, const Shape& target);

}  // namespace lmlab
