// Keeping a checkpoint's matrices in their stored precision for inference: bf16 / f16 weights of an
// HF folder run as bf16 / f16 products (ops/qmatmul.h) straight from the memory-mapped file instead
// of being widened to f32, which halves the bytes each decoded token streams.
#pragma once
#include <map>
#include <string>

#include "lmlab/models/transformer.h"
#include "lmlab/nn/module.h"
#include "lmlab/ops/qmatmul.h"

namespace lmlab {

// A 2-D contiguous F32/F16/BF16 tensor as a QMatrix sharing its memory (the tensor is kept alive).
QMatrix qmatrix_view(const Tensor& t);

// For every entry of `sd` that is a Linear or Embedding layer's weight in `model` ("<path>.weight"
// where <path> is such a layer) stored as BF16 or F16: the layer takes it as its QMatrix and the
// entry is removed from `sd` (the rest is then loaded with load_state_dict). A tied head then runs
// from the embedding's QMatrix. Returns the number of layers converted.
int64_t attach_half_precision_weights(Module& model, std::map<std::string, Tensor>& sd);

// After weights were attached in stored form: fuse q/k/v and gate/up rows of each layer (experts
// included) into single matrices where they share a type (SelfAttention::fuse_quantized), and lay
// Q8_0 matrices (those and the rest: o/down projections, the head) out interleaved for decoding.
void fuse_quantized_weights(Transformer& model);

}  // namespace lmlab
