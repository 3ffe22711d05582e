// libFuzzer: bytes -> config.json, loaded the way `lmlab generate` loads a folder (load_hf_model:
// checked against the weights' tensor headers, then built and filled) against three fixed tiny
// checkpoints; an accepted config runs a forward pass. The same text through
// TransformerConfig::from_json alone: an accepted config re-serialises to itself, and a small one is
// built, with exactly model_state_numel values. Size bombs (a huge layer count, width or expert
// count) must be refused before allocation: the target runs under -rss_limit_mb and -malloc_limit_mb.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.h"
#include "fuzz/fuzz_models.h"
#include "lmlab/models/model_check.h"
#include "lmlab/autograd/engine.h"

using namespace lmlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto& fixed : fuzz::fixed_checkpoints()) {
    HfFolder h = fixed.folder;
    h.config_json = text;
    LoadedModel lm;
    try {
      lm = load_hf_model(h);
    } catch (const Error&) {
      continue;
    }
    const TransformerConfig& c = lm.model->cfg;
    if (model_state_numel(c) > model_state_numel(fixed.cfg)) fuzz::fail("accepted a model larger than its weights");
    NoGrad ng;
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{0, c.vocab_size - 1, 1}, {1, 3});
    try {
      Tensor y = lm.model->forward(ids);
      if (y.shape() != (Shape{1, 3, c.vocab_size})) fuzz::fail("logits shape");
      fuzz::touch(y.raw_data(), y.nbytes());
    } catch (const Error&) {  // e.g. a context shorter than 3 tokens
    }
  }
  TransformerConfig c;
  try {
    c = TransformerConfig::from_json(text, "fuzz/config.json");
  } catch (const Error&) {
    return 0;
  }
  const std::string js = c.to_json();
  if (TransformerConfig::from_json(js, "again").to_json() != js) fuzz::fail("config.json round trip");
  const int64_t n = model_state_numel(c);
  if (n <= (int64_t(1) << 16)) {
    SkipInit skip;
    Transformer m(c, 1);
    int64_t built = 0;
    for (const auto& [name, t] : m.state_dict()) built += t.numel();
    if (built != n) fuzz::fail("model_state_numel != the built model's values");
  }
  return 0;
}
