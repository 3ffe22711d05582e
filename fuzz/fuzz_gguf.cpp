// libFuzzer: bytes -> GgufFile::from_bytes. Every tensor of a parsed file has its byte range read
// whole (ASan) and is decoded by ggml_dequantize for its type, which must stay inside that range;
// the typed metadata getters must answer or throw lmlab errors.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "lmlab/core/quant.h"
#include "lmlab/io/gguf.h"

using namespace lmlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  GgufFile g;
  try {
    g = GgufFile::from_bytes(bytes, "fuzz.gguf");
  } catch (const Error&) {
    return 0;
  }
  for (const auto& [key, v] : g.metadata()) {
    (void)v;
    try { (void)g.get_int(key); } catch (const Error&) {}
    try { (void)g.get_float(key); } catch (const Error&) {}
    try { (void)g.get_string(key); } catch (const Error&) {}
    try { (void)g.get_bool(key); } catch (const Error&) {}
    try { (void)g.get_array(key); } catch (const Error&) {}
  }
  for (const auto& ti : g.tensors()) {
    auto raw = g.raw(ti.name);
    if (raw.size() != ti.nbytes || raw.size() != ggml_row_size(ti.type, numel_of(ti.shape)))
      fuzz::fail("raw size != the type's size for the shape");
    // An exact-size heap copy: any read past the range the parser validated trips ASan here, where
    // the mapping itself may have bytes after it.
    std::vector<uint8_t> exact(raw.begin(), raw.end());
    std::vector<float> out(size_t(numel_of(ti.shape)));
    ggml_dequantize(ti.type, exact.data(), out.data(), int64_t(out.size()));
    fuzz::touch(out.data(), out.size() * sizeof(float));
    Tensor t = g.get_tensor(ti.name, DType::F32);
    if (t.shape() != ti.shape) fuzz::fail("get_tensor shape");
    fuzz::touch(t.raw_data(), t.nbytes());
  }
  return 0;
}
