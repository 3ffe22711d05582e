// Reading tool calls back from generated text.
#include "lmlab/serve/tool_calls.h"

#include <algorithm>
#include <string_view>

namespace lmlab::serve {

namespace {

using json = nlohmann::ordered_json;

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// One call object: {"name": str, "arguments"|"parameters": object or JSON string}.
bool call_of(const json& j, const std::vector<std::string>& names, ToolCall& out) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
  std::string name = j["name"].get<std::string>();
  if (std::find(names.begin(), names.end(), name) == names.end()) return false;
  json args = json::object();
  for (const char* key : {"arguments", "parameters"})
    if (j.contains(key)) {
      args = j[key];
      break;
    }
  if (args.is_string()) {
    try {
      args = json::parse(args.get<std::string>());
    } catch (const json::exception&) {
      return false;
    }
  }
  if (!args.is_object()) return false;
  out.name = name;
  out.arguments = args.dump(-1, ' ', false, json::error_handler_t::replace);
  return true;
}

bool parse_json(const std::string& s, json& out) {
  try {
    out = json::parse(s);
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

}  // namespace

ParsedReply parse_tool_calls(const std::string& text, const std::vector<std::string>& names) {
  ParsedReply r;
  // <tool_call> ... </tool_call> blocks
  const std::string open = "<tool_call>", close = "</tool_call>";
  if (text.find(open) != std::string::npos) {
    std::string rest;
    size_t pos = 0;
    bool all_ok = true;
    std::vector<ToolCall> calls;
    while (true) {
      size_t a = text.find(open, pos);
      if (a == std::string::npos) {
        rest += text.substr(pos);
        break;
      }
      rest += text.substr(pos, a - pos);
      size_t b = text.find(close, a + open.size());
      std::string body = trim(text.substr(a + open.size(), b == std::string::npos ? std::string::npos : b - a - open.size()));
      json j;
      ToolCall c;
      if (parse_json(body, j) && call_of(j, names, c)) calls.push_back(c);
      else all_ok = false;
      if (b == std::string::npos) break;
      pos = b + close.size();
    }
    if (all_ok && !calls.empty()) {
      r.calls = std::move(calls);
      r.content = trim(rest);
      return r;
    }
  }
  std::string t = trim(text);
  for (const char* prefix : {"[TOOL_CALLS]", "<|python_tag|>"})
    if (t.rfind(prefix, 0) == 0) t = trim(t.substr(std::string(prefix).size()));
  json j;
  if (!t.empty() && (t[0] == '[' || t[0] == '{') && parse_json(t, j)) {
    std::vector<ToolCall> calls;
    bool ok = true;
    if (j.is_array()) {
      for (const auto& x : j) {
        ToolCall c;
        if (call_of(x, names, c)) calls.push_back(c);
        else ok = false;
      }
    } else {
      ToolCall c;
      if (call_of(j, names, c)) calls.push_back(c);
      else ok = false;
    }
    if (ok && !calls.empty()) {
      r.calls = std::move(calls);
      return r;
    }
  }
  r.content = text;
  return r;
}

size_t tool_call_safe_prefix(const std::string& text) {
  const size_t b = text.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return 0;  // white space so far: a call may still open the reply
  if (text[b] == '{' || text[b] == '[') return 0;
  const std::string_view head(text.data() + b, text.size() - b);
  for (std::string_view opener : {std::string_view("[TOOL_CALLS]"), std::string_view("<|python_tag|>")})
    if (head.substr(0, opener.size()) == opener.substr(0, head.size())) return 0;
  const std::string open = "<tool_call>";
  size_t at = text.find(open);
  if (at != std::string::npos) return at;
  for (size_t k = std::min(open.size() - 1, text.size()); k > 0; --k)
    if (text.compare(text.size() - k, k, open, 0, k) == 0) return text.size() - k;
  return text.size();
}

json decode_tool_call_arguments(const json& messages) {
  json out = messages;
  for (auto& m : out) {
    if (!m.is_object() || !m.contains("tool_calls") || !m["tool_calls"].is_array()) continue;
    for (auto& tc : m["tool_calls"]) {
      if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object()) continue;
      json& f = tc["function"];
      if (f.contains("arguments") && f["arguments"].is_string()) {
        json parsed;
        if (parse_json(f["arguments"].get<std::string>(), parsed) && parsed.is_object()) f["arguments"] = parsed;
      }
    }
  }
  return out;
}

}  // namespace lmlab::serve
