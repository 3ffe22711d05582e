// libFuzzer: bytes -> SafetensorsFile::from_bytes. A parsed file must hand out only in-bounds
// tensors (ASan checks every byte), and writing its tensors back must give a file that parses to
// the same names, dtypes, shapes, bytes and metadata.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.h"
#include "lmlab/io/safetensors.h"

using namespace lmlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SafetensorsFile f;
  try {
    f = SafetensorsFile::from_bytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
  } catch (const Error&) {
    return 0;  // rejected with an lmlab error: fine; anything else escapes and crashes
  }
  std::vector<std::pair<std::string, Tensor>> all;
  size_t total = 0;
  for (const auto& n : f.names()) {
    Tensor t = f.get(n);
    const SafetensorsTensorInfo& in = f.info(n);
    if (t.shape() != in.shape || t.dtype() != in.dtype || t.nbytes() != in.nbytes()) fuzz::fail("info != tensor");
    // The byte count is numel x element size; a count above the bytes means the product wrapped.
    if (uint64_t(t.numel()) > t.nbytes() || t.nbytes() / dtype_size(t.dtype()) != uint64_t(t.numel()))
      fuzz::fail("element count does not match the bytes (size product wrapped)");
    fuzz::touch(t.raw_data(), t.nbytes());
    total += t.nbytes();
    all.emplace_back(n, t);
  }
  if (total != f.data_bytes()) fuzz::fail("data_bytes != sum of tensor bytes");
  SafetensorsFile g = SafetensorsFile::from_bytes(safetensors_bytes(all, f.metadata()), "rewritten");
  if (g.names().size() != f.names().size() || g.metadata() != f.metadata()) fuzz::fail("round trip: names/metadata");
  for (const auto& [n, t] : all) {
    Tensor u = g.get(n);
    if (u.shape() != t.shape() || u.dtype() != t.dtype() ||
        std::memcmp(u.raw_data(), t.raw_data(), t.nbytes()) != 0)
      fuzz::fail("round trip: tensor differs");
  }
  return 0;
}
