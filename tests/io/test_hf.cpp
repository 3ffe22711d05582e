// Hugging Face model folders: what HfFolder gathers (config.json, sharded or single weights,
// tokenizer files), the variants of tokenizer_config.json and generation_config.json found in
// published models, and errors naming the file and field.
#include <gtest/gtest.h>

#include <filesystem>

#include "lmlab/io/hf.h"
#include "lmlab/lmlab.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;
using lmlab::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::pair<std::string, Tensor>> weights() {
  Generator g(5);
  return {{"a", Tensor::randn({16, 4}, g)}, {"b", Tensor::randn({16, 4}, g)}, {"c", Tensor::randn({3}, g)}};
}

void put(const fs::path& p, const std::string& text) { write_file_atomic(p.string(), text); }

}  // namespace

TEST(HfFolder, ShardedFolderWithEveryFile) {
  TempDir tmp("hf_full");
  auto ws = weights();
  save_safetensors_shards(tmp.path.string(), ws, 300);  // [a] [b c]
  put(tmp.path / "config.json", R"({"model_type":"llama"})");
  put(tmp.path / "tokenizer.json", "{}");
  put(tmp.path / "tokenizer_config.json", R"({
    "add_bos_token": true, "add_eos_token": false,
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
    "eos_token": "</s>", "pad_token": null, "unk_token": {"content": "<unk>"},
    "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})");
  put(tmp.path / "generation_config.json", R"({
    "_from_model_config": true, "bos_token_id": 1, "eos_token_id": [2, 32000], "pad_token_id": null,
    "do_sample": true, "temperature": 0.6, "top_p": 0.9, "top_k": 40, "max_new_tokens": 256,
    "max_length": 4096, "repetition_penalty": 1.1, "transformers_version": "4.40.0"})");
  HfFolder h = HfFolder::open(tmp.path.string());
  EXPECT_EQ(h.config_json, R"({"model_type":"llama"})");
  EXPECT_EQ(h.weights.files().size(), 2u);
  EXPECT_EQ(h.weights.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(h.weights.get("b").to_vector<float>(), ws[1].second.to_vector<float>());
  EXPECT_EQ(h.tokenizer_json, std::optional<std::string>((tmp.path / "tokenizer.json").string()));
  const auto& tc = h.tokenizer_config;
  EXPECT_EQ(tc.bos_token, std::optional<std::string>("<s>"));
  EXPECT_EQ(tc.eos_token, std::optional<std::string>("</s>"));
  EXPECT_FALSE(tc.pad_token);
  EXPECT_EQ(tc.unk_token, std::optional<std::string>("<unk>"));
  EXPECT_EQ(tc.add_bos_token, std::optional<bool>(true));
  EXPECT_EQ(tc.add_eos_token, std::optional<bool>(false));
  EXPECT_EQ(tc.chat_template, std::optional<std::string>("{% for m in messages %}{{ m.content }}{% endfor %}"));
  const auto& g = h.generation;
  EXPECT_EQ(g.bos_token_id, std::optional<int64_t>(1));
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{2, 32000}));
  EXPECT_FALSE(g.pad_token_id);
  EXPECT_EQ(g.do_sample, std::optional<bool>(true));
  EXPECT_EQ(g.temperature, std::optional<double>(0.6));
  EXPECT_EQ(g.top_p, std::optional<double>(0.9));
  EXPECT_EQ(g.top_k, std::optional<int64_t>(40));
  EXPECT_EQ(g.max_new_tokens, std::optional<int64_t>(256));
  EXPECT_EQ(g.max_length, std::optional<int64_t>(4096));
  EXPECT_EQ(g.repetition_penalty, std::optional<double>(1.1));
}

TEST(HfFolder, MinimalFolderAndMissingFiles) {
  TempDir tmp("hf_min");
  expect_error<IoError>([&] { HfFolder::open((tmp.path / "absent").string()); }, "is not a folder");
  save_safetensors(tmp / "model.safetensors", weights());
  expect_error<IoError>([&] { HfFolder::open(tmp.path.string()); }, tmp.path.string() + "' has no config.json");
  put(tmp.path / "config.json", "{}");
  HfFolder h = HfFolder::open(tmp.path.string());  // no tokenizer or generation files: all unset
  EXPECT_EQ(h.weights.files().size(), 1u);
  EXPECT_FALSE(h.tokenizer_json);
  EXPECT_FALSE(h.tokenizer_config.bos_token || h.tokenizer_config.chat_template || h.tokenizer_config.add_bos_token);
  EXPECT_TRUE(h.generation.eos_token_ids.empty());
  EXPECT_FALSE(h.generation.temperature || h.generation.top_k || h.generation.do_sample);
  fs::remove(tmp.path / "model.safetensors");
  expect_error<IoError>([&] { HfFolder::open(tmp.path.string()); }, "has neither model.safetensors");
}

TEST(HfFolder, ChatTemplateVariants) {
  // the list form: the entry named "default" is the default, the others are kept by name
  auto c = HfTokenizerConfig::parse(
      R"({"chat_template":[{"name":"tool_use","template":"T"},{"name":"default","template":"D"}]})");
  EXPECT_EQ(c.chat_template, std::optional<std::string>("D"));
  EXPECT_EQ(c.chat_templates.at("tool_use"), "T");
  auto nodef = HfTokenizerConfig::parse(R"({"chat_template":[{"name":"rag","template":"R"}]})");
  EXPECT_FALSE(nodef.chat_template);
  EXPECT_EQ(nodef.chat_templates.size(), 1u);
  // newer transformers keep the template beside tokenizer_config.json
  TempDir tmp("hf_tmpl");
  save_safetensors(tmp / "model.safetensors", weights());
  put(tmp.path / "config.json", "{}");
  put(tmp.path / "tokenizer_config.json", R"({"eos_token":"<|end|>"})");
  put(tmp.path / "chat_template.jinja", "{{ messages }}");
  EXPECT_EQ(HfFolder::open(tmp.path.string()).tokenizer_config.chat_template, std::optional<std::string>("{{ messages }}"));
  fs::remove(tmp.path / "chat_template.jinja");
  put(tmp.path / "chat_template.json", R"({"chat_template":"J"})");
  HfFolder h = HfFolder::open(tmp.path.string());
  EXPECT_EQ(h.tokenizer_config.chat_template, std::optional<std::string>("J"));
  EXPECT_EQ(h.tokenizer_config.eos_token, std::optional<std::string>("<|end|>"));
  // a template inside tokenizer_config.json wins
  put(tmp.path / "tokenizer_config.json", R"({"chat_template":"inline"})");
  EXPECT_EQ(HfFolder::open(tmp.path.string()).tokenizer_config.chat_template, std::optional<std::string>("inline"));
}

TEST(HfFolder, GenerationConfigVariants) {
  auto g = HfGenerationConfig::parse(R"({"eos_token_id": 2, "temperature": 1, "top_k": 0})");
  EXPECT_EQ(g.eos_token_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(g.temperature, std::optional<double>(1.0));  // an integer where a float is meant
  EXPECT_EQ(g.top_k, std::optional<int64_t>(0));
  EXPECT_TRUE(HfGenerationConfig::parse(R"({"eos_token_id": null})").eos_token_ids.empty());
  EXPECT_TRUE(HfGenerationConfig::parse(R"({"eos_token_id": []})").eos_token_ids.empty());
}

TEST(HfFolder, MalformedFilesNameFileAndField) {
  auto gen_bad = [](const std::string& text, const std::string& part) {
    expect_error<FormatError>([&] { HfGenerationConfig::parse(text, "gc.json"); }, part);
    expect_error<FormatError>([&] { HfGenerationConfig::parse(text, "gc.json"); }, "'gc.json'");
  };
  gen_bad("{", "not valid JSON");
  gen_bad("[]", "expected a JSON object");
  gen_bad(R"({"eos_token_id":"2"})", "eos_token_id must be an integer or a list");
  gen_bad(R"({"eos_token_id":[2,"x"]})", "eos_token_id[1] must be an integer");
  gen_bad(R"({"eos_token_id":2.5})", "eos_token_id must be an integer");
  gen_bad(R"({"bos_token_id":true})", "bos_token_id must be an integer");
  gen_bad(R"({"pad_token_id":18446744073709551615})", "pad_token_id = 18446744073709551615 does not fit");
  gen_bad(R"({"do_sample":"yes"})", "do_sample must be true or false");
  gen_bad(R"({"temperature":"hot"})", "temperature must be a number");
  gen_bad(R"({"temperature":-1})", "temperature -1 is negative");
  gen_bad(R"({"top_p":1.5})", "top_p 1.5 is outside [0, 1]");
  gen_bad(R"({"top_k":4.5})", "top_k must be an integer");
  gen_bad(R"({"top_k":-3})", "top_k -3 is negative");
  gen_bad(R"({"max_new_tokens":-1})", "max_new_tokens -1 is negative");
  gen_bad(R"({"max_length":"long"})", "max_length must be an integer");
  gen_bad(R"({"repetition_penalty":0})", "repetition_penalty 0 must be positive");

  auto tok_bad = [](const std::string& text, const std::string& part) {
    expect_error<FormatError>([&] { HfTokenizerConfig::parse(text, "tc.json"); }, part);
    expect_error<FormatError>([&] { HfTokenizerConfig::parse(text, "tc.json"); }, "'tc.json'");
  };
  tok_bad("nope", "not valid JSON");
  tok_bad(R"({"bos_token":3})", "bos_token must be a string or an object");
  tok_bad(R"({"eos_token":{"text":"</s>"}})", "eos_token must be a string or an object with a string \"content\"");
  tok_bad(R"({"pad_token":{"content":1}})", "pad_token");
  tok_bad(R"({"add_bos_token":1})", "add_bos_token must be true or false");
  tok_bad(R"({"add_eos_token":"false"})", "add_eos_token must be true or false");
  tok_bad(R"({"chat_template":5})", "chat_template must be a string or a list");
  tok_bad(R"({"chat_template":[{"name":"default"}]})", "chat_template[0] must be");
  tok_bad(R"({"chat_template":[{"name":"a","template":"x"},{"name":"a","template":"y"}]})", "names 'a' twice");

  // inside a folder the error names the file's path
  TempDir tmp("hf_bad");
  save_safetensors(tmp / "model.safetensors", weights());
  put(tmp.path / "config.json", "{}");
  put(tmp.path / "generation_config.json", R"({"top_k":"many"})");
  expect_error<FormatError>([&] { HfFolder::open(tmp.path.string()); },
                            (tmp.path / "generation_config.json").string() + "': top_k must be an integer");
  fs::remove(tmp.path / "generation_config.json");
  put(tmp.path / "tokenizer_config.json", R"({"unk_token":[]})");
  expect_error<FormatError>([&] { HfFolder::open(tmp.path.string()); },
                            (tmp.path / "tokenizer_config.json").string() + "': unk_token");
}
