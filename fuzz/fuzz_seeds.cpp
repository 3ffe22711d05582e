// Writes the seed corpora: small valid inputs made by lmlab's own writers, one folder per target
// under argv[1] (corpus/<target>/). The fuzzers start from these, so they reach the deep checks
// (offsets, layouts, block types) instead of stalling on the magic and the JSON syntax.
#include <cstdio>
#include <filesystem>
#include <string>

#include "fuzz/fuzz_common.h"
#include "lmlab/core/file.h"
#include "lmlab/core/quant.h"
#include "lmlab/io/gguf.h"
#include "lmlab/io/safetensors.h"

using namespace lmlab;
namespace fs = std::filesystem;

namespace {

void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  write_file_atomic((dir / name).string(), bytes, "fuzz_seeds");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
    return 2;
  }
  fs::path out = argv[1];
  try {
    fs::path st = out / "fuzz_safetensors";
    put(st, "empty", safetensors_bytes({}));
    put(st, "meta", safetensors_bytes({}, {{"format", "pt"}, {"note", "x"}}));
    put(st, "f32", safetensors_bytes({{"w", fuzz::ramp({2, 3}, 0.5f)}}));
    put(st, "mixed", safetensors_bytes({{"a", fuzz::ramp({4}, 1.0f)},
                                        {"b", fuzz::cast(fuzz::ramp({3}, 1.0f), DType::BF16)},
                                        {"c", Tensor::arange(3, DType::I64)},
                                        {"d", fuzz::cast(fuzz::ramp({2}, 1.0f), DType::F16)},
                                        {"e", Tensor::zeros({0, 4})},
                                        {"f", Tensor::ones({5}, DType::U8)}},
                                       {{"format", "pt"}}));

    fs::path ix = out / "fuzz_safetensors_index";
    put(ix, "valid", fuzz::fixed_index());
    // the seed must reach the end of the cross-checks, or the fuzzer starts from an early reject
    SafetensorsShards::assemble("seed", SafetensorsIndex::parse(fuzz::fixed_index()), fuzz::fixed_shards());
    put(ix, "no_total", R"({"weight_map": {"norm": "sub/extra.safetensors", "embed.weight": "sub/extra.safetensors"}})");
    put(ix, "float_total", R"({"metadata": {"total_size": 24.0}, "weight_map": {"embed.weight": "model-00001-of-00002.safetensors"}})");

    fs::path gg = out / "fuzz_gguf";
    GgufWriter meta;
    meta.set("general.architecture", "llama");
    meta.set("general.alignment", uint32_t(16));
    meta.set("u8", uint8_t(1));
    meta.set("i64", int64_t(-5));
    meta.set("f64", 0.25);
    meta.set("ok", true);
    meta.set("toks", GgufValue::array(GgufType::STRING, {"a", "bb"}));
    meta.set("nested", GgufValue::array(GgufType::ARRAY, {GgufValue::array(GgufType::I32, {int32_t(1)})}));
    put(gg, "meta", meta.bytes());
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K,
                       GgmlType::Q6_K}) {
      GgufWriter w;
      int64_t n = ggml_block_size(t) == 1 ? 8 : ggml_block_size(t);
      w.add_tensor("t", fuzz::ramp({1, n}, 0.1f), t);
      put(gg, std::string("one_") + ggml_type_name(t), w.bytes());
    }
    // alignment 1: tensors at odd offsets, so the decoders meet unaligned blocks as a real file may give them
    GgufWriter odd;
    odd.set("general.alignment", uint32_t(1));
    odd.set("x", uint8_t(7));
    odd.add_tensor("h", fuzz::ramp({3}, 0.5f), GgmlType::F16);
    odd.add_tensor("q", fuzz::ramp({32}, 0.5f), GgmlType::Q8_0);
    odd.add_tensor("k", fuzz::ramp({256}, 0.5f), GgmlType::Q6_K);
    put(gg, "odd_alignment", odd.bytes());
    GgufWriter two;
    two.add_tensor("a", fuzz::ramp({2, 32}, 0.2f), GgmlType::Q8_0);
    two.add_tensor("b", fuzz::ramp({4}, 1.0f));
    put(gg, "two", two.bytes());
  } catch (const Error& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
