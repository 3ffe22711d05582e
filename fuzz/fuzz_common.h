// Shared by the fuzz targets and the seed writer: touching memory so that ASan checks every byte a
// parser hands out, and the fixed shards the index fuzzer validates its inputs against.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "lmlab/io/safetensors.h"

namespace lmlab::fuzz {

// Reads every byte of [p, p + n); the sum goes to a volatile so the loads stay.
inline void touch(const void* p, size_t n) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  unsigned s = 0;
  for (size_t i = 0; i < n; ++i) s += b[i];
  volatile unsigned sink = s;
  (void)sink;
}

// `t` converted to `d` with core's copy_into (Tensor::to lives in ops, which the fuzzers do not link).
inline Tensor cast(const Tensor& t, DType d) {
  Tensor c = Tensor::empty(t.shape(), d);
  copy_into(c, t);
  return c;
}

// Values -8..8 times `scale` in `shape`.
inline Tensor ramp(const Shape& shape, float scale) {
  std::vector<float> v(size_t(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = (float(i % 17) - 8.0f) * scale;
  return Tensor::from_vector(v, shape);
}

// A property failed: crash so libFuzzer records the input.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz property failed: %s\n", what);
  std::abort();
}

// Three shards in memory: the HF-named pair and one more name, with a tensor repeated across them
// so that "in two shards" and "not listed" are reachable.
inline const std::map<std::string, SafetensorsFile>& fixed_shards() {
  static const std::map<std::string, SafetensorsFile> shards = [] {
    std::map<std::string, SafetensorsFile> m;
    Tensor a = ramp({2, 3}, 1.0f), b = Tensor::arange(4, DType::I64);
    Tensor c = Tensor::ones({5}, DType::BF16);
    m.emplace("model-00001-of-00002.safetensors",
              SafetensorsFile::from_bytes(safetensors_bytes({{"embed.weight", a}, {"layers.0.w", b}}), "shard1"));
    m.emplace("model-00002-of-00002.safetensors",
              SafetensorsFile::from_bytes(safetensors_bytes({{"lm_head.weight", c}}), "shard2"));
    m.emplace("sub/extra.safetensors",
              SafetensorsFile::from_bytes(safetensors_bytes({{"embed.weight", a}, {"norm", c}}), "extra"));
    return m;
  }();
  return shards;
}

// The index that matches fixed_shards()' first two files (seed for the index fuzzer).
inline std::string fixed_index() {
  return R"({"metadata": {"total_size": 66}, "weight_map": {"embed.weight": "model-00001-of-00002.safetensors",)"
         R"( "layers.0.w": "model-00001-of-00002.safetensors", "lm_head.weight": "model-00002-of-00002.safetensors"}})";
}

}  // namespace lmlab::fuzz
