// Products with block-quantized weights (ggml's Q8_0 / Q4_0 / Q4_K / Q6_K layouts, core/quant.h),
// as llama.cpp runs them on a CPU: the activations are quantized to 8 bits on the fly (Q8_0 blocks
// of 32 for Q8_0/Q4_0 weights, Q8_K blocks of 256 for the K-quants) and every output is an integer
// dot product of weight and activation blocks, scaled per block. F32 / F16 / BF16 matrices are
// accepted too (dense path). Inference only: no gradients flow through a QMatrix.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lmlab/core/quant.h"
#include "lmlab/core/tensor.h"

namespace lmlab {

// A [rows, cols] weight matrix in ggml blocks (each row is ggml_row_size(type, cols) bytes; cols must
// be a multiple of the block size). `bytes` keeps the memory alive: an owned buffer or a mapped file
// (zero-copy GGUF loading).
//
// Layout. Row-major (interleave == 0) is ggml's: row r at bytes + r * row_bytes(). A Q8_0 matrix
// whose rows are a multiple of 16 can instead be interleaved (interleave == 16, made by
// interleaved()) for decoding: groups of 16 rows, each group one contiguous run of
// nb = cols / 32 blocks, and per group
//   codes  [nb][8][16][4] uint8: block b, quad j, row i holds the codes of values 4j..4j+3 of row
//          16g + i in block b, stored offset by 128 (q + 128, so 0..255), and then
//   scales [nb][16] f16: block b's scale of each of the 16 rows.
// One 64-byte load then feeds a VNNI instruction 4 codes of 16 rows against one broadcast activation
// quad, with no per-row horizontal sums (the layout llama.cpp's repacking CPU backends use too).
// The bytes are the same in number (nbytes()); row() and the ggml block functions need row-major.
struct QMatrix {
  GgmlType type = GgmlType::F32;
  int64_t rows = 0, cols = 0;
  std::shared_ptr<const uint8_t> bytes;
  int64_t interleave = 0;  // 0: row-major; kInterleaveRows: interleaved (above)

  static constexpr int64_t kInterleaveRows = 16;

  size_t row_bytes() const { return ggml_row_size(type, cols); }
  size_t nbytes() const { return row_bytes() * size_t(rows); }
  // Row r of a row-major matrix (ggml blocks).
  const uint8_t* row(int64_t r) const { return bytes.get() + size_t(r) * row_bytes(); }
  // Row r's ggml blocks written to dst (row_bytes() bytes), for either layout.
  void copy_row(int64_t r, uint8_t* dst) const;
  // Rows r0 .. r0 + n - 1 as f32 into out [n, cols], for either layout.
  void dequantize_rows(int64_t r0, int64_t n, float* out) const;

  // Whether interleaved() would change the layout: Q8_0, rows a positive multiple of 16, row-major.
  bool can_interleave() const;
  // The interleaved copy (above) when can_interleave(); otherwise *this (the same bytes).
  QMatrix interleaved() const;
  // The row-major form: *this when it is row-major, else a copy (bytes identical to the matrix that
  // was interleaved).
  QMatrix row_major() const;

  // Quantizes a 2-D f32/bf16/f16 tensor (contiguous or not). Throws ValueError when cols is not a
  // multiple of the type's block size.
  static QMatrix quantize(const Tensor& w, GgmlType type);
  // Wraps existing bytes (checked: size must equal rows * row_bytes).
  static QMatrix wrap(GgmlType type, int64_t rows, int64_t cols, std::shared_ptr<const uint8_t> bytes,
                      size_t size);
  // Rows of several matrices of the same type and cols, stacked (fused q/k/v or gate/up). Interleaved
  // when every part is; row-major otherwise.
  static QMatrix concat_rows(const std::vector<const QMatrix*>& parts);
  // f32 [rows, cols].
  Tensor dequantize() const;
};

// x [..., K] (f32) times w^T, w [N, K] -> [..., N] f32, plus bias [N] when defined. Small row
// counts (decoding) run quantized dot products; larger ones may take a faster path when it gives
// the same result within the activation-quantization error (see docs/LM.md).
Tensor qlinear(const Tensor& x, const QMatrix& w, const Tensor& bias = Tensor());

// Embedding lookup from a row-major QMatrix table [V, C] (any type): ids (i64/i32, any shape) ->
// [..., C] f32, each row dequantized as ggml does (so a quantized GGUF embedding needs no f32
// copy of the table). Ids out of [0, V) raise IndexError. Inference only (no gradient).
Tensor qembedding(const QMatrix& table, const Tensor& ids);

// Reference: dequantize the weight to f32 and multiply in f64 accumulation, activations unquantized.
Tensor qlinear_reference(const Tensor& x, const QMatrix& w, const Tensor& bias = Tensor());

namespace cpu {
// Raw entry: y[m, n] = sum_k x[m, k] * w[n, k] for row-major x [M, K] (ldx) and y [M, N] (ldy).
void qgemm(const QMatrix& w, const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy);
// Kernel sets for the integer dot products: "avx512vnni" (AVX-512 F/BW/DQ/VL/VNNI), "avx2"
// (AVX2 + FMA + F16C) and "portable" (plain C++). Every binary for x86-64 carries all three, each
// compiled for its own instructions whatever -march says, and uses the fastest one this CPU runs,
// unless the environment variable LMLAB_QGEMM_ISA names another (e.g. to imitate a CPU without
// AVX-512) or qgemm_force_isa does.
// The name of the set in use.
const char* qgemm_isa();
// The sets this CPU can run, fastest first (the first is the default).
std::vector<std::string> qgemm_isas();
// Tests and benchmarks: use the named set ("" = back to the default). Throws ValueError for a name
// that is not one of qgemm_isas(). Process-wide; returns the previous forced name ("" = none).
std::string qgemm_force_isa(const std::string& name);
// qgemm_force_isa("portable") when on, else back to the default. Returns whether portable was forced.
bool qgemm_force_portable(bool on);
// Row count M from which quantized weights are dequantized to bf16 panels and multiplied by the
// oneDNN bf16 GEMM (AMX) instead of by integer dot products (measured default in qmatmul.cpp).
// Process-wide; returns the previous value. A huge value keeps every call on the integer kernels.
int64_t qgemm_set_dense_min_rows(int64_t m);
}  // namespace cpu

}  // namespace lmlab
