// Tool calls read back from a model's reply, in the formats the common chat templates teach:
//   <tool_call>{"name": ..., "arguments": {...}}</tool_call>   (Hermes, Qwen2.5/3, many others; repeatable)
//   [{"name": ..., "arguments": {...}}, ...]                      (Mistral, after its [TOOL_CALLS] token)
//   {"name": ..., "parameters": {...}}                            (Llama 3.1/3.2 JSON tool calling; also "arguments")
// A call counts only when its name is one of the request's tools, so ordinary JSON in an answer is
// not mistaken for one. Arguments come back as a JSON string (OpenAI's shape).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmlab::serve {

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text of an object
};

struct ParsedReply {
  std::string content;           // the text outside the calls (trimmed)
  std::vector<ToolCall> calls;
};

ParsedReply parse_tool_calls(const std::string& text, const std::vector<std::string>& tool_names);

// Streaming with tools: how many leading bytes of a growing reply can be shown as content now. Held
// back: everything from a "<tool_call>", a reply that opens (after white space) with '{', '[',
// "[TOOL_CALLS]" or "<|python_tag|>" (or could still grow into one), and a tail that could still
// grow into "<tool_call>". The cut never splits a UTF-8 character.
size_t tool_call_safe_prefix(const std::string& text);

// OpenAI's assistant messages carry tool-call arguments as JSON strings; templates index into them
// as objects. Returns the messages with each such string that holds a JSON object decoded (as vLLM
// does before rendering).
nlohmann::ordered_json decode_tool_call_arguments(const nlohmann::ordered_json& messages);

}  // namespace lmlab::serve
