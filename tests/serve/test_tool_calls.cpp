// Tool calls read back from replies in the formats chat templates teach, and only for the request's
// tools; OpenAI's string arguments decoded for templates.
#include <gtest/gtest.h>

#include "lmlab/serve/tool_calls.h"

using namespace lmlab::serve;
using json = nlohmann::ordered_json;

TEST(ToolCalls, HermesQwenTags) {
  auto r = parse_tool_calls("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                            "<tool_call>{\"name\": \"get_time\", \"arguments\": \"{\\\"tz\\\": \\\"CET\\\"}\"}</tool_call>",
                            {"get_weather", "get_time"});
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].name, "get_weather");
  EXPECT_EQ(r.calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(r.calls[1].arguments, "{\"tz\":\"CET\"}");
  EXPECT_EQ(r.content, "Let me check.");
}

TEST(ToolCalls, MistralListAndLlamaJson) {
  auto m = parse_tool_calls(" [{\"name\": \"f\", \"arguments\": {\"x\": 1}}, {\"name\": \"g\", \"arguments\": {}}]", {"f", "g"});
  ASSERT_EQ(m.calls.size(), 2u);
  EXPECT_EQ(m.calls[1].name, "g");
  auto l = parse_tool_calls("<|python_tag|>{\"name\": \"f\", \"parameters\": {\"q\": \"a b\"}}", {"f"});
  ASSERT_EQ(l.calls.size(), 1u);
  EXPECT_EQ(l.calls[0].arguments, "{\"q\":\"a b\"}");
}

TEST(ToolCalls, OrdinaryAnswersStayText) {
  // JSON that names no tool of the request, broken JSON, plain text
  EXPECT_TRUE(parse_tool_calls("{\"name\": \"Alice\", \"arguments\": {}}", {"f"}).calls.empty());
  EXPECT_TRUE(parse_tool_calls("<tool_call>{\"name\": \"f\", \"arguments\": {</tool_call>", {"f"}).calls.empty());
  auto t = parse_tool_calls("The answer is 42.", {"f"});
  EXPECT_TRUE(t.calls.empty());
  EXPECT_EQ(t.content, "The answer is 42.");
}

TEST(ToolCalls, StringArgumentsDecodedForTemplates) {
  json msgs = json::parse(R"([{"role": "assistant", "content": null, "tool_calls": [
    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}},
    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}}]}])");
  json out = decode_tool_call_arguments(msgs);
  EXPECT_TRUE(out[0]["tool_calls"][0]["function"]["arguments"].is_object());
  EXPECT_EQ(out[0]["tool_calls"][0]["function"]["arguments"]["x"], 1);
  EXPECT_EQ(out[0]["tool_calls"][1]["function"]["arguments"], "not json");
}

TEST(ToolCalls, StreamingShowsTextUpToWhereACallMayBegin) {
  EXPECT_EQ(tool_call_safe_prefix("Hello there"), 11u);
  EXPECT_EQ(tool_call_safe_prefix("Hello <tool"), 6u);           // could grow into <tool_call>
  EXPECT_EQ(tool_call_safe_prefix("Hello <"), 6u);
  EXPECT_EQ(tool_call_safe_prefix("Hello <tool_call>{\"na"), 6u);
  EXPECT_EQ(tool_call_safe_prefix("a < b"), 5u);                  // '<' that cannot open a call
  EXPECT_EQ(tool_call_safe_prefix("a <b>"), 5u);
  EXPECT_EQ(tool_call_safe_prefix("  {\"name\""), 0u);          // a reply that opens with JSON
  EXPECT_EQ(tool_call_safe_prefix("[{"), 0u);
  EXPECT_EQ(tool_call_safe_prefix("\n "), 0u);                    // nothing but white space yet
  EXPECT_EQ(tool_call_safe_prefix("<|python"), 0u);               // could grow into <|python_tag|>
  EXPECT_EQ(tool_call_safe_prefix("<|python_tag|>{"), 0u);
  EXPECT_EQ(tool_call_safe_prefix("<b>bold</b>"), 11u);
  EXPECT_EQ(tool_call_safe_prefix("caf\xc3\xa9 <tool_c"), 6u);   // whole characters before the hold
  // what is shown plus the held rest is the reply, and a real call stays held
  const std::string reply = "Let me check. <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
  size_t shown = tool_call_safe_prefix(reply);
  EXPECT_EQ(reply.substr(0, shown), "Let me check. ");
  EXPECT_EQ(parse_tool_calls(reply, {"f"}).calls.size(), 1u);
}
