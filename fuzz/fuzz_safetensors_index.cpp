// libFuzzer: bytes -> SafetensorsIndex::parse (model.safetensors.index.json), then the cross-checks
// against fixed in-memory shards. Accepted shard names never leave the folder, an accepted index
// re-serialises to itself, and an assembled set hands out only tensors the index maps.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.h"
#include "lmlab/io/safetensors.h"

using namespace lmlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafetensorsIndex idx;
  try {
    idx = SafetensorsIndex::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.index.json");
  } catch (const Error&) {
    return 0;
  }
  for (const auto& [t, file] : idx.weight_map) {
    // a ".." component, written independently of the parser's check ("..x" is an ordinary name)
    std::string wrapped = "/" + file + "/";
    if (file.empty() || file[0] == '/' || wrapped.find("/../") != std::string::npos)
      fuzz::fail("accepted a shard name outside the folder");
  }
  SafetensorsIndex again = SafetensorsIndex::parse(idx.to_json(), "again");
  if (again.weight_map != idx.weight_map || again.total_size != idx.total_size) fuzz::fail("index round trip");
  try {
    SafetensorsShards s = SafetensorsShards::assemble("fuzz.index.json", idx, fuzz::fixed_shards());
    if (s.names().size() != idx.weight_map.size()) fuzz::fail("assembled names != weight_map");
    for (const auto& n : s.names()) {
      if (!idx.weight_map.count(n)) fuzz::fail("assembled an unmapped tensor");
      Tensor t = s.get(n);
      fuzz::touch(t.raw_data(), t.nbytes());
    }
  } catch (const Error&) {
  }
  return 0;
}
