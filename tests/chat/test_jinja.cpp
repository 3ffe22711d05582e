// The Jinja engine against jinja2: every committed case of tests/chat/cases.json must render
// byte-identical to the expected file the oracle (tools/chat/jinja_oracle.py, Debian's jinja2 set
// up as transformers sets it up) wrote, or fail where jinja2 raised. Plus the values as Python
// prints them, the errors users read, and the engine's limits.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "lmlab/chat/chat_template.h"
#include "lmlab/chat/jinja.h"
#include "lmlab/io/gguf.h"

namespace fs = std::filesystem;
using namespace lmlab;
using namespace lmlab::jinja;

namespace {

const fs::path kChatDir = fs::path(LMLAB_FIXTURE_DIR) / ".." / "chat";

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string render(const std::string& src, const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) {
  Template t(src, "t.jinja");
  Dict d;
  for (auto it = vars.begin(); it != vars.end(); ++it) d.set(Value::string(it.key()), from_json(it.value()));
  return t.render(d);
}

std::string error_of(const std::string& src, const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) {
  try {
    render(src, vars);
  } catch (const TemplateError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(JinjaCases, EveryCommittedCaseMatchesTheJinja2Oracle) {
  ::setenv("LMLAB_FIXED_DATE", "2026-01-15", 1);
  auto cases = nlohmann::ordered_json::parse(read_file(kChatDir / "cases.json"));
  ASSERT_GT(cases.size(), 200u);
  int rendered = 0, raised = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    auto conv = nlohmann::ordered_json::parse(read_file(kChatDir / "conversations" / c["conversation"].get<std::string>()));
    if (conv.is_array()) conv = nlohmann::ordered_json{{"messages", conv}};
    if (c.contains("vars"))
      for (auto it = c["vars"].begin(); it != c["vars"].end(); ++it) conv[it.key()] = it.value();
    chat::ChatRequest req = chat::chat_request_from_json(conv, name);
    req.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    const fs::path tpl = kChatDir / "templates" / c["template"].get<std::string>();
    const fs::path txt = kChatDir / "expected" / (name + ".txt");
    std::string out, err;
    try {
      Template t(read_file(tpl), tpl.filename().string());
      out = chat::render_chat(t, req, c["bos_token"].get<std::string>(), c["eos_token"].get<std::string>());
    } catch (const Error& e) {
      err = e.what();
    }
    if (fs::exists(txt)) {
      ASSERT_EQ(err, "") << "jinja2 rendered this case";
      const std::string want = read_file(txt);
      if (out != want) {
        size_t i = 0;
        while (i < out.size() && i < want.size() && out[i] == want[i]) ++i;
        size_t from = i > 60 ? i - 60 : 0;
        ADD_FAILURE() << "first difference at byte " << i << "\n  got:  " << out.substr(from, 120)
                      << "\n  want: " << want.substr(from, 120);
      }
      ++rendered;
    } else {
      EXPECT_NE(err, "") << "jinja2 raised (" << read_file(kChatDir / "expected" / (name + ".error"))
                         << ") but lmlab rendered " << out.size() << " bytes";
      ++raised;
    }
  }
  EXPECT_GT(rendered, 200);
  EXPECT_GT(raised, 10);
  ::unsetenv("LMLAB_FIXED_DATE");
}

TEST(JinjaValues, FloatsPrintAsPython) {
  EXPECT_EQ(float_repr(1.0), "1.0");
  EXPECT_EQ(float_repr(0.1), "0.1");
  EXPECT_EQ(float_repr(1e-5), "1e-05");
  EXPECT_EQ(float_repr(0.0001), "0.0001");
  EXPECT_EQ(float_repr(1e16), "1e+16");
  EXPECT_EQ(float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(float_repr(-2.5e-7), "-2.5e-07");
  EXPECT_EQ(float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(float_repr(-0.0), "-0.0");
  EXPECT_EQ(float_repr(123456789.125), "123456789.125");
}

TEST(JinjaValues, ReprQuotesAndEscapesAsPython) {
  EXPECT_EQ(string_repr("it's"), "\"it's\"");
  EXPECT_EQ(string_repr("say \"hi\" it's"), "'say \"hi\" it\\'s'");
  EXPECT_EQ(string_repr("a\nb\t\\"), "'a\\nb\\t\\\\'");
  EXPECT_EQ(string_repr("\x01\x7f"), "'\\x01\\x7f'");
  EXPECT_EQ(string_repr("caf\xc3\xa9 \xf0\x9f\x98\x80"), "'caf\xc3\xa9 \xf0\x9f\x98\x80'");
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5, (1,), {'k': [2]}] }}"), "[1, 'a', None, True, 1.5, (1,), {'k': [2]}]");
}

TEST(JinjaValues, TojsonFollowsJsonDumps) {
  nlohmann::ordered_json v = {{"x", {{"b", 1}, {"a", {1.0, "\xc3\xa9", nullptr, true}}}}};
  EXPECT_EQ(render("{{ x | tojson }}", v), "{\"b\": 1, \"a\": [1.0, \"\xc3\xa9\", null, true]}");
  EXPECT_EQ(render("{{ x | tojson(indent=2) }}", v),
            "{\n  \"b\": 1,\n  \"a\": [\n    1.0,\n    \"\xc3\xa9\",\n    null,\n    true\n  ]\n}");
  EXPECT_EQ(render("{{ x | tojson(sort_keys=true, separators=(',', ':')) }}", v), "{\"a\":[1.0,\"\xc3\xa9\",null,true],\"b\":1}");
  EXPECT_EQ(render("{{ x | tojson(ensure_ascii=true) }}", v), "{\"b\": 1, \"a\": [1.0, \"\\u00e9\", null, true]}");
  EXPECT_EQ(render("{{ '\\u00e9\\n\"' | tojson }}"), "\"\xc3\xa9\\n\\\"\"");
  // a surrogate pair in the JSON input is one code point, encoded as UTF-8
  auto j = nlohmann::ordered_json::parse(R"({"s": "\ud83d\ude00"})");
  EXPECT_EQ(render("{{ s }}|{{ s | length }}|{{ s | tojson(ensure_ascii=true) }}", j), "\xf0\x9f\x98\x80|1|\"\\ud83d\\ude00\"");
}

TEST(JinjaSemantics, ScopingFollowsJinja2) {
  // a set inside a loop lives one iteration; namespace carries state out; if does not scope
  EXPECT_EQ(render("{% set x = 0 %}{% for i in range(3) %}{% set x = x + 1 %}{{ x }}{% endfor %}|{{ x }}"), "111|0");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"), "6");
  EXPECT_EQ(render("{% if true %}{% set z = 3 %}{% endif %}{{ z }}"), "3");
  EXPECT_EQ(render("{% macro m() %}{{ h }}{% endmacro %}{% set h = 2 %}{{ m() }}"), "2");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] if x is even %}{{ loop.index }}/{{ loop.length }} {% endfor %}"), "1/2 2/2 ");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in range(5) %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}"), "02");
}

TEST(JinjaSemantics, GeneratorsBehaveAsInPython) {
  nlohmann::ordered_json v = {{"m", {{{"role", "user"}}, {{"role", "system"}}}}};
  // select/map give generators: always true, no len(), no JSON; |list makes a list
  EXPECT_EQ(render("{{ 'y' if m | selectattr('role', 'equalto', 'tool') else 'n' }}", v), "y");
  EXPECT_EQ(render("{{ m | selectattr('role', 'equalto', 'system') | list | length }}", v), "1");
  EXPECT_NE(error_of("{{ m | map(attribute='role') | length }}", v).find("has no len()"), std::string::npos);
  EXPECT_NE(error_of("{{ m | map(attribute='role') | tojson }}", v).find("not JSON serializable"), std::string::npos);
  EXPECT_EQ(render("{{ none | selectattr('x') | list }}"), "[]");
}

TEST(JinjaErrors, RaiseExceptionPassesTheMessageThrough) {
  EXPECT_EQ(error_of("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"),
            "Conversation roles must alternate user/assistant/user/assistant/...");
}

TEST(JinjaErrors, FailuresNameTheTemplateLineAndProblem) {
  EXPECT_EQ(error_of("line one\n{{ foo() }}"), "t.jinja:2: 'foo' is undefined");
  EXPECT_EQ(error_of("{{ x.y }}"), "t.jinja:1: 'x' is undefined");
  EXPECT_EQ(error_of("{{ d.a.b }}", {{"d", nlohmann::ordered_json::object()}}), "t.jinja:1: 'dict object' has no attribute 'a'");
  EXPECT_EQ(error_of("{{ m.append(1) }}", {{"m", {1}}}), "t.jinja:1: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "t.jinja:1: integer division or modulo by zero");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "t.jinja:1: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(error_of("\n\n{% if x %}"), "t.jinja:3: unexpected end of template: looking for 'elif' or 'else' or 'endif' to close 'if'");
  EXPECT_EQ(error_of("{{ x | nosuch }}"), "t.jinja:1: no filter named 'nosuch'");
  EXPECT_EQ(error_of("{% do x %}"), "t.jinja:1: unsupported feature '{% do %}' (transformers' environment does not enable it either)");
  // unknown filters inside an if only fail when reached, as in jinja2
  EXPECT_EQ(render("{% if false %}{{ x | nosuch }}{% endif %}ok"), "ok");
}

TEST(JinjaErrors, UnsupportedFeaturesAreNamedWithTheirLine) {
  EXPECT_EQ(error_of("a\n{% include 'other.jinja' %}"),
            "t.jinja:2: unsupported feature '{% include %}': chat templates are rendered without a template loader");
  EXPECT_EQ(error_of("{% extends 'base' %}"),
            "t.jinja:1: unsupported feature '{% extends %}': chat templates are rendered without a template loader");
  EXPECT_EQ(error_of("{{ 'x' | urlize }}"), "t.jinja:1: unsupported feature: the filter 'urlize'");
  EXPECT_EQ(error_of("{% for x in y recursive %}{% endfor %}"), "t.jinja:1: unsupported feature: recursive for loops");
}

TEST(JinjaLimits, BoundsInsteadOfCrashes) {
  EXPECT_EQ(error_of("{{ 100000000000000000000 }}"), "t.jinja:1: integer literal 100000000000000000000 does not fit in 64 bits");
  EXPECT_EQ(error_of("{{ 0b9 }}"), "t.jinja:1: invalid base-2 integer literal 0b9");
  EXPECT_EQ(error_of("{{ 0o78 }}"), "t.jinja:1: invalid base-8 integer literal 0o78");
  EXPECT_EQ(error_of("{{ 0xFFFFFFFFFFFFFFFFFFFF }}"), "t.jinja:1: integer literal 0xFFFFFFFFFFFFFFFFFFFF does not fit in 64 bits");
  EXPECT_EQ(error_of("{{ 2 ** 64 }}"), "t.jinja:1: integer overflow (lmlab's integers are 64-bit)");
  EXPECT_NE(error_of("{{ range(1000000) | length }}").find("Range too big"), std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("maximum recursion depth"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 100000000000 }}").find("repetition too large"), std::string::npos);
}

TEST(JinjaStrftime, FixedDateMakesRendersReproducible) {
  ::setenv("LMLAB_FIXED_DATE", "2025-07-04", 1);
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A') }}"), "04 Jul 2025|Friday");
  ::unsetenv("LMLAB_FIXED_DATE");
}

// ---- where a model's template comes from ----

namespace {
struct TempDir {
  fs::path p;
  TempDir() {
    p = fs::temp_directory_path() / ("lmlab_chat_test_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()));
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(p / name) << text; }
};
}  // namespace

TEST(ChatTemplateLoad, ReadsTheFormsModelsShip) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
    "chat_template": [{"name": "default", "template": "D{{ bos_token }}"}, {"name": "tool_use", "template": "T{{ tools | length }}"}]})");
  chat::ChatRequest req;
  req.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}});
  chat::ChatTemplate ct = chat::load_chat_template(d.p.string());
  EXPECT_EQ(chat::render_chat(ct, req), "D<s>");
  EXPECT_EQ(ct.eos_token, "</s>");
  req.tools = nlohmann::ordered_json::array({{{"type", "function"}}});
  EXPECT_EQ(chat::render_chat(chat::load_chat_template(d.p.string(), "", true), req), "T1");
  EXPECT_EQ(chat::render_chat(chat::load_chat_template(d.p.string(), "default", true), req), "D<s>");
  EXPECT_THROW(chat::load_chat_template(d.p.string(), "nosuch"), ConfigError);
  // chat_template.jinja overrides the config's, as in transformers
  d.write("chat_template.jinja", "J{{ eos_token }}\n");
  EXPECT_EQ(chat::render_chat(chat::load_chat_template(d.p.string()), req), "J</s>");
}

TEST(ChatTemplateLoad, GgufMetadataAndTheChatMlDefault) {
  TempDir d;
  GgufWriter w;
  w.set("general.architecture", "llama");
  w.set("tokenizer.ggml.tokens", GgufValue::array(GgufType::STRING, {"<unk>", "<|begin|>", "<|end|>"}));
  w.set("tokenizer.ggml.bos_token_id", uint32_t(1));
  w.set("tokenizer.ggml.eos_token_id", uint32_t(2));
  w.set("tokenizer.chat_template", "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}");
  w.write((d.p / "m.gguf").string());
  chat::ChatRequest req;
  req.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}});
  chat::ChatTemplate ct = chat::load_chat_template((d.p / "m.gguf").string());
  EXPECT_EQ(ct.origin, "GGUF tokenizer.chat_template");
  EXPECT_EQ(chat::render_chat(ct, req), "<|begin|>hi<|end|>");
  // no template anywhere: ChatML, flagged so that callers warn
  d.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  chat::ChatTemplate def = chat::load_chat_template(d.p.string());
  EXPECT_TRUE(def.is_default);
  req.add_generation_prompt = true;
  EXPECT_EQ(chat::render_chat(def, req), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateLoad, BadMessagesFilesAreNamed) {
  EXPECT_THROW(chat::chat_request_from_json(nlohmann::ordered_json(3), "m.json"), ConfigError);
  EXPECT_THROW(chat::chat_request_from_json(nlohmann::ordered_json::object(), "m.json"), ConfigError);
  EXPECT_THROW(chat::chat_request_from_json(nlohmann::ordered_json::parse(R"([1])"), "m.json"), ConfigError);
  auto r = chat::chat_request_from_json(nlohmann::ordered_json::parse(R"({"messages": [], "enable_thinking": false, "tools": null})"), "m.json");
  EXPECT_FALSE(r.tools.has_value());
  EXPECT_EQ(r.extra["enable_thinking"], false);
}
