// GGUF tokenizer metadata (lmlab/models/gguf_tokenizer.h): a byte-level BPE trained with
// Tokenizer::train and the SentencePiece-style fixture (tests/tokenizer/data/spm_tiny.json) saved
// to GGUF and read back tokenize tests/data/multilingual.txt exactly like the tokenizer.json
// originals, and the GGUF form saves back to a tokenizer.json that does too; llama.cpp's `pre`
// names; bad metadata answered with errors naming the key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "lmlab/io/gguf.h"
#include "lmlab/models/gguf_tokenizer.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;
using lmlab::test::slurp;
using Ids = std::vector<int32_t>;

namespace {

const std::string kDataDir = std::string(LMLAB_FIXTURE_DIR) + "/../tokenizer/data";
const std::string kText = slurp(std::string(LMLAB_FIXTURE_DIR) + "/../data/multilingual.txt");

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t from = 0;
  while (from < text.size()) {
    size_t nl = text.find('\n', from);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(from, nl - from));
    from = nl + 1;
  }
  return out;
}

GgufWriter writer_for(const Tokenizer& t) {
  GgufWriter w;
  w.set("general.architecture", "llama");
  write_gguf_tokenizer(w, t);
  return w;
}

std::unique_ptr<Tokenizer> read_back(const GgufWriter& w) {
  return tokenizer_from_gguf(GgufFile::from_bytes(w.bytes(), "tok.gguf"));
}

// Encodings of the whole text, of each line, and with special tokens not allowed, all equal.
void expect_same_tokenization(const Tokenizer& a, const Tokenizer& b) {
  EXPECT_EQ(a.encode(kText), b.encode(kText));
  EXPECT_EQ(a.encode(kText, false), b.encode(kText, false));
  for (const std::string& line : lines_of(kText)) EXPECT_EQ(a.encode(line), b.encode(line)) << line;
  EXPECT_EQ(b.decode(b.encode(kText)), kText);
  EXPECT_EQ(a.post_process(a.encode("x")), b.post_process(b.encode("x")));
  EXPECT_EQ(a.bos_id(), b.bos_id());
  EXPECT_EQ(a.eos_id(), b.eos_id());
}

Tokenizer trained(PatternPreset preset) {
  TrainOptions o;
  o.vocab_size = 600;
  o.min_frequency = 1;
  o.special_tokens = {"<|endoftext|>", "<|pad|>"};
  o.preset = preset;
  return Tokenizer::train(lines_of(kText), o);
}

}  // namespace

TEST(GgufTokenizer, ByteLevelRoundTripsThroughGguf) {
  for (PatternPreset p : {PatternPreset::Gpt2, PatternPreset::Llama3, PatternPreset::Qwen2}) {
    Tokenizer t = trained(p);
    GgufWriter w = writer_for(t);
    GgufFile f = GgufFile::from_bytes(w.bytes(), "tok.gguf");
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"),
              p == PatternPreset::Gpt2 ? "gpt-2" : p == PatternPreset::Llama3 ? "smaug-bpe" : "qwen2");
    EXPECT_FALSE(f.has("tokenizer.ggml.scores"));
    std::unique_ptr<Tokenizer> g = tokenizer_from_gguf(f);
    ASSERT_TRUE(g);
    expect_same_tokenization(t, *g);
    // GGUF -> tokenizer.json -> the same again.
    expect_same_tokenization(t, Tokenizer::from_json(g->to_json(), "back.json"));
  }
}

TEST(GgufTokenizer, SentencePieceRoundTripsThroughGguf) {
  Tokenizer t = Tokenizer::from_file(kDataDir + "/spm_tiny.json");
  GgufWriter w = writer_for(t);
  GgufFile f = GgufFile::from_bytes(w.bytes(), "tok.gguf");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_FALSE(f.has("tokenizer.ggml.merges"));
  EXPECT_FALSE(f.has("tokenizer.ggml.pre"));
  const auto& types = f.get_array("tokenizer.ggml.token_type").items;
  ASSERT_EQ(types.size(), size_t(t.vocab_size()));
  EXPECT_EQ(types[0], GgufValue(int32_t(2)));  // <unk>
  EXPECT_EQ(types[1], GgufValue(int32_t(3)));  // <s>
  EXPECT_EQ(types[3 + 0x41], GgufValue(int32_t(6)));  // <0x41>
  EXPECT_EQ(types[300], GgufValue(int32_t(1)));
  EXPECT_EQ(f.get_array("tokenizer.ggml.scores").elem, GgufType::F32);
  EXPECT_EQ(f.get_array("tokenizer.ggml.scores").items.size(), types.size());
  EXPECT_EQ(f.get_int("tokenizer.ggml.unknown_token_id"), 0);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token"));
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_space_prefix"));

  std::unique_ptr<Tokenizer> g = tokenizer_from_gguf(f);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->kind(), TokenizerKind::SentencePieceBpe);
  EXPECT_EQ(g->spm_model().algorithm(), SpmModel::Algorithm::Score);
  expect_same_tokenization(t, *g);
  // The golden strings (Tokenizers.js ids) through the score loop.
  auto golden = nlohmann::json::parse(slurp(kDataDir + "/spm_tiny_golden.json"));
  for (const auto& c : golden["cases"]) {
    EXPECT_EQ(g->encode(c["text"].get<std::string>()), c["legacy"]["ids"].get<Ids>());
    EXPECT_EQ(g->post_process(g->encode(c["text"].get<std::string>())), c["legacy"]["with_special"].get<Ids>());
  }
  // GGUF -> tokenizer.json (merges derived from the scores) -> GGUF again: same tokens.
  Tokenizer back = Tokenizer::from_json(g->to_json(), "back.json");
  EXPECT_EQ(back.spm_model().merges(), t.spm_model().merges());
  expect_same_tokenization(t, back);
  expect_same_tokenization(t, *read_back(writer_for(back)));
}

TEST(GgufTokenizer, AddSpacePrefixFalse) {
  Tokenizer t = Tokenizer::from_file(kDataDir + "/spm_tiny.json");
  GgufWriter w = writer_for(t);
  w.set("tokenizer.ggml.add_space_prefix", false);
  w.set("tokenizer.ggml.add_bos_token", false);
  std::unique_ptr<Tokenizer> g = read_back(w);
  Ids with = t.encode("the"), without = g->encode("the");
  EXPECT_EQ(t.id_to_token(with.front()).substr(0, 3), "\u2581");
  EXPECT_NE(g->id_to_token(without.front()).substr(0, 3), "\u2581");
  EXPECT_EQ(g->decode(without), "the");
  EXPECT_EQ(g->post_process({5}), (Ids{5}));
}

TEST(GgufTokenizer, PreNames) {
  Tokenizer t = trained(PatternPreset::Gpt2);
  GgufWriter w = writer_for(t);
  // llama.cpp's "default" (also what an absent pre means): four regexes in a row.
  w.set("tokenizer.ggml.pre", "default");
  std::unique_ptr<Tokenizer> d = read_back(w);
  EXPECT_EQ(d->pre_tokenizer().steps().size(), 5u);
  EXPECT_EQ(gguf_pre_name(*d), "default");
  EXPECT_EQ(d->pre_tokenize("abc!!123456"), (std::vector<std::string>{"abc", "!!", "123", "456"}));
  for (const char* name : {"llama-bpe", "llama3", "llama-v3"}) {
    w.set("tokenizer.ggml.pre", name);
    std::unique_ptr<Tokenizer> l = read_back(w);
    EXPECT_TRUE(l->model().ignore_merges()) << name;
    EXPECT_EQ(gguf_pre_name(*l), "llama-bpe");
  }
  w.set("tokenizer.ggml.pre", "qwen2");
  EXPECT_EQ(read_back(w)->pre_tokenize("12345"), (std::vector<std::string>{"1", "2", "3", "4", "5"}));
  w.set("tokenizer.ggml.pre", "deepseek-coder");
  expect_error<FormatError>([&] { read_back(w); }, "tokenizer.ggml.pre 'deepseek-coder' is not supported");
  // A pre-tokenizer llama.cpp has no name for is refused on write rather than mislabelled.
  TrainOptions o;
  o.vocab_size = 300;
  o.pattern = R"(\S+|\s+)";
  Tokenizer custom = Tokenizer::train({"a b c"}, o);
  expect_error<ValueError>([&] { writer_for(custom); }, "tokenizer.ggml.pre");
}

TEST(GgufTokenizer, BadMetadataNamesTheKey) {
  Tokenizer t = Tokenizer::from_file(kDataDir + "/spm_tiny.json");
  const int32_t n = t.vocab_size();
  auto fails = [&](auto&& edit, const std::string& needle) {
    GgufWriter w = writer_for(t);
    edit(w);
    expect_error<FormatError>([&] { read_back(w); }, needle);
  };
  fails([&](GgufWriter& w) { w.set("tokenizer.ggml.model", "bert"); }, "tokenizer.ggml.model is 'bert'");
  fails(
      [&](GgufWriter& w) {
        w.set("tokenizer.ggml.scores", GgufValue::array(GgufType::F32, std::vector<GgufValue>(size_t(n - 1), 0.f)));
      },
      "tokenizer.ggml.scores has " + std::to_string(n - 1) + " entries, expected " + std::to_string(n));
  fails(
      [&](GgufWriter& w) {
        w.set("tokenizer.ggml.scores", GgufValue::array(GgufType::I32, std::vector<GgufValue>(size_t(n), int32_t(0))));
      },
      "tokenizer.ggml.scores is an array of i32, expected f32");
  fails(
      [&](GgufWriter& w) {
        std::vector<GgufValue> types(size_t(n), int32_t(1));
        types[7] = int32_t(7);
        w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, std::move(types)));
      },
      "tokenizer.ggml.token_type[7]");
  fails(
      [&](GgufWriter& w) {
        w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, std::vector<GgufValue>(3, int32_t(1))));
      },
      "tokenizer.ggml.token_type has 3 entries");
  fails([&](GgufWriter& w) { w.set("tokenizer.ggml.tokens", GgufValue::array(GgufType::I32, {int32_t(1)})); },
        "tokenizer.ggml.tokens is an array of i32");
  fails([&](GgufWriter& w) { w.set("tokenizer.ggml.bos_token_id", uint32_t(n + 5)); }, "tokenizer.ggml.bos_token_id");
  fails(
      [&](GgufWriter& w) {
        // A byte type on a token that is not <0xXX>.
        std::vector<GgufValue> types(size_t(n), int32_t(1));
        types[300] = int32_t(6);
        w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, std::move(types)));
      },
      "has type byte (6)");
  fails([&](GgufWriter& w) { w.set("tokenizer.ggml.unknown_token_id", uint32_t(n)); }, "unknown token id");
}
