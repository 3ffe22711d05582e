// libFuzzer: bytes -> HfTokenizerConfig::parse (tokenizer_config.json, chat_template.json) and
// HfGenerationConfig::parse (generation_config.json). Parse or FormatError; an accepted
// generation config holds only values the sampler can take.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.h"
#include "lmlab/io/hf.h"

using namespace lmlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    HfTokenizerConfig c = HfTokenizerConfig::parse(text, "fuzz/tokenizer_config.json");
    if (c.chat_template) fuzz::touch(c.chat_template->data(), c.chat_template->size());
    for (const auto& [name, tpl] : c.chat_templates) fuzz::touch(tpl.data(), tpl.size());
    if (!c.chat_templates.empty() && c.chat_templates.count("default") && c.chat_template != c.chat_templates.at("default"))
      fuzz::fail("the default of a template list is not the chat template");
  } catch (const Error&) {
  }
  try {
    HfGenerationConfig g = HfGenerationConfig::parse(text, "fuzz/generation_config.json");
    if (g.temperature && !(*g.temperature >= 0)) fuzz::fail("negative or NaN temperature accepted");
    if (g.top_p && !(*g.top_p >= 0 && *g.top_p <= 1)) fuzz::fail("top_p outside [0, 1] accepted");
    if (g.top_k && *g.top_k < 0) fuzz::fail("negative top_k accepted");
    if (g.repetition_penalty && !(*g.repetition_penalty > 0)) fuzz::fail("repetition_penalty <= 0 accepted");
  } catch (const Error&) {
  }
  return 0;
}
