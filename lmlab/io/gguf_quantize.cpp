// GGUF re-quantization (see gguf_quantize.h). Rows are independent in every ggml block type, so a
// matrix is converted row by row in parallel: dequantize to f32, quantize to the target.
#include "lmlab/io/gguf_quantize.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "lmlab/core/error.h"
#include "lmlab/core/parallel.h"
#include "lmlab/io/gguf.h"

namespace lmlab {

GgmlType ggml_type_from_name(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  static const std::pair<const char*, GgmlType> kTypes[] = {
      {"f32", GgmlType::F32},   {"f16", GgmlType::F16},   {"bf16", GgmlType::BF16}, {"q8_0", GgmlType::Q8_0},
      {"q4_0", GgmlType::Q4_0}, {"q4_k", GgmlType::Q4_K}, {"q6_k", GgmlType::Q6_K}};
  for (const auto& [s, t] : kTypes)
    if (n == s) return t;
  throw ValueError(str_cat("[quantize] unknown type '", name, "' (choose f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)"));
}

namespace {

// llama.cpp's llama_ftype codes for general.file_type.
uint32_t file_type_code(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q4_K: return 14;  // Q4_K_S: Q4_K matrices
    case GgmlType::Q6_K: return 18;
    case GgmlType::BF16: return 32;
  }
  return 0;
}

bool is_head(const std::string& name, bool has_output) {
  return name == "output.weight" || (!has_output && name == "token_embd.weight");
}

std::string convert_rows(const uint8_t* src, GgmlType from, GgmlType to, int64_t rows, int64_t cols) {
  const size_t in_row = ggml_row_size(from, cols), out_row = ggml_row_size(to, cols);
  std::string out(out_row * size_t(rows), '\0');
  parallel_for(0, rows, 16, [&](int64_t lo, int64_t hi) {
    std::vector<float> buf(static_cast<size_t>(cols));
    for (int64_t r = lo; r < hi; ++r) {
      ggml_dequantize(from, src + size_t(r) * in_row, buf.data(), cols);
      ggml_quantize(to, buf.data(), out.data() + size_t(r) * out_row, cols);
    }
  });
  return out;
}

}  // namespace

QuantizeReport gguf_quantize(const std::string& in_path, const std::string& out_path, const QuantizeOptions& opt) {
  LMLAB_CHECK(in_path != out_path, ValueError, "[quantize] input and output are the same file '", in_path, "'");
  GgufFile f = GgufFile::open(in_path);
  const bool four_bit = opt.type == GgmlType::Q4_K || opt.type == GgmlType::Q4_0;
  const GgmlType head_type = opt.output_type.value_or(four_bit ? GgmlType::Q6_K : opt.type);
  const bool has_output = f.contains("output.weight");

  GgufWriter w;
  for (const auto& [k, v] : f.metadata()) {
    if (k == "general.alignment") continue;  // the writer sets its own
    w.set(k, v);
  }
  w.set("general.file_type", file_type_code(opt.type));
  w.set("general.quantization_version", uint32_t(2));

  QuantizeReport rep;
  for (const GgufTensorInfo& ti : f.tensors()) {
    ++rep.tensors;
    rep.bytes_in += ti.nbytes;
    auto raw = f.raw(ti.name);
    const bool matrix = ti.shape.size() >= 2 && ti.name.ends_with(".weight") &&
                        ti.name.find("ffn_gate_inp.weight") == std::string::npos;
    GgmlType to = ti.type;
    if (matrix) {
      to = is_head(ti.name, has_output) ? head_type : opt.type;
      const int64_t cols = ti.shape.back();
      if (cols % ggml_block_size(to) != 0) {
        GgmlType fb = cols % kQK8_0 == 0 ? GgmlType::Q8_0 : ti.type;
        rep.notes.push_back(str_cat(ti.name, ": rows of ", cols, " values are not a multiple of ",
                                    ggml_block_size(to), " (", ggml_type_name(to), "), written as ",
                                    ggml_type_name(fb)));
        to = fb;
      }
    }
    int64_t numel = 1;
    for (int64_t d : ti.shape) numel *= d;
    rep.bytes_out += ggml_row_size(to, numel);
    if (to != ti.type) ++rep.requantized;
    // Converted when the file is written, one tensor at a time: the output never sits in memory whole.
    w.add_lazy(ti.name, ti.shape, to, [raw, from = ti.type, to, shape = ti.shape] {
      if (to == from) return std::string(reinterpret_cast<const char*>(raw.data()), raw.size());
      const int64_t cols = shape.back();
      int64_t rows = 1;
      for (size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
      return convert_rows(raw.data(), from, to, rows, cols);
    });
  }
  w.write(out_path);
  return rep;
}

}  // namespace lmlab
