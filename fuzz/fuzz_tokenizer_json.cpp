// libFuzzer: bytes -> Tokenizer::from_json (tokenizer.json). An accepted tokenizer encodes and
// decodes fixed strings and a piece of its own input with every id in [0, vocab_size), and writes
// a tokenizer.json that reads back to one that encodes the same. Id tables are sized by the largest
// id, so an id far beyond the listed tokens must be refused (the target runs under -rss_limit_mb).
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "lmlab/tokenizer/tokenizer.h"

using namespace lmlab;

namespace {
void check_ids(const Tokenizer& t, const std::vector<int32_t>& ids) {
  for (int32_t id : ids)
    if (id < 0 || id >= t.vocab_size()) fuzz::fail("encode gave an id outside [0, vocab_size)");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::optional<Tokenizer> parsed;
  try {
    parsed.emplace(Tokenizer::from_json(text, "fuzz/tokenizer.json"));
  } catch (const Error&) {
    return 0;
  }
  const Tokenizer& t = *parsed;
  const std::vector<std::string> samples = {"", "Hello, world!", " the  cat\n\tsat", "\xe2\x96\x81x \xc3\xa9\xf0\x9f\x98\x80",
                                            "\xff\xfe bad utf-8 \xc3", "<s>a</s><|endoftext|>", text.substr(0, 64)};
  std::vector<std::vector<int32_t>> encoded;
  try {
    for (const auto& s : samples) {
      for (bool special : {true, false}) {
        std::vector<int32_t> ids = t.encode(s, special);
        check_ids(t, ids);
        std::string d = t.decode(ids), ds = t.decode(ids, true);
        fuzz::touch(d.data(), d.size());
        fuzz::touch(ds.data(), ds.size());
        if (special) encoded.push_back(std::move(ids));
      }
    }
    check_ids(t, t.post_process(encoded[1]));
  } catch (const Error&) {  // e.g. a pattern that hits PCRE2's match limit
    return 0;
  }
  std::optional<Tokenizer> back;
  try {
    back.emplace(Tokenizer::from_json(t.to_json(), "written"));
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    fuzz::fail("the written tokenizer.json does not read back");
  }
  for (size_t i = 0; i < samples.size(); ++i)
    if (back->encode(samples[i]) != encoded[i]) fuzz::fail("the written tokenizer.json encodes differently");
  return 0;
}
