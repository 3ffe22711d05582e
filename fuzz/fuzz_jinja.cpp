// libFuzzer: bytes -> a chat template, parsed and rendered over a fixed conversation with tools
// (the variables transformers passes). Any input renders or throws lmlab::Error (TemplateError);
// never a crash, a sanitizer report, a hang (the engine bounds loops, calls, recursion and output)
// or an allocation past the RSS limit.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_common.h"
#include "lmlab/chat/chat_template.h"
#include "lmlab/chat/jinja.h"

using namespace lmlab;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const chat::ChatRequest req = [] {
    auto j = nlohmann::ordered_json::parse(R"({
      "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather in Paris? \u00e9 \ud83d\ude00"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
          "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"t\": 21.5}"},
        {"role": "assistant", "content": "21.5 C", "reasoning_content": "easy"}],
      "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
      "enable_thinking": false})");
    chat::ChatRequest r = chat::chat_request_from_json(j, "fuzz");
    r.add_generation_prompt = true;
    return r;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    jinja::Template t(text, "fuzz.jinja");
    std::string out = chat::render_chat(t, req, "<s>", "</s>");
    fuzz::touch(out.data(), out.size());
  } catch (const Error&) {
  }
  return 0;
}
