// libFuzzer: bytes -> TrainConfig::from_json (`lmlab train --config`, the registry's run configs on
// --resume). An accepted config re-serialises to itself and its model, when small, is built with
// exactly model_state_numel values; one too large for this machine's memory is refused by validate.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.h"
#include "lmlab/models/model_check.h"
#include "lmlab/nn/module.h"
#include "lmlab/train/trainer.h"

using namespace lmlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TrainConfig c;
  try {
    c = TrainConfig::from_json(std::string(reinterpret_cast<const char*>(data), size), "fuzz/train.json");
  } catch (const Error&) {
    return 0;
  }
  const std::string js = c.to_json();
  TrainConfig again = TrainConfig::from_json(js, "again");
  if (again.to_json() != js) fuzz::fail("train config round trip");
  const int64_t n = model_state_numel(c.model);
  if (n <= (int64_t(1) << 16)) {
    SkipInit skip;
    Transformer m(c.model, c.seed);
    int64_t built = 0;
    for (const auto& [name, t] : m.state_dict()) built += t.numel();
    if (built != n) fuzz::fail("model_state_numel != the built model's values");
  }
  return 0;
}
