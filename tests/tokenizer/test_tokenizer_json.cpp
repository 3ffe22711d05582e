// Hand-built tokenizer.json vectors (tests/tokenizer/data, expected ids worked out by hand; see
// data/README.md), the format's validation errors, and a fuzz check that damaged files only ever
// raise lmlab errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "lmlab/core/error.h"
#include "lmlab/tokenizer/tokenizer.h"

using namespace lmlab;

namespace {
const std::string kDataDir = std::string(LMLAB_FIXTURE_DIR) + "/../tokenizer/data";
using Ids = std::vector<int32_t>;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  size_t p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

// Expects from_json(json) to throw E with every one of `needles` in the message.
template <class E>
void expect_error(const std::string& json, std::initializer_list<const char*> needles) {
  try {
    Tokenizer::from_json(json, "case.json");
    ADD_FAILURE() << "no error; expected one mentioning " << *needles.begin();
  } catch (const E& e) {
    std::string m = e.what();
    for (const char* n : needles) EXPECT_NE(m.find(n), std::string::npos) << "message: " << m << "\nmissing: " << n;
  }
}
}  // namespace

TEST(TokenizerJson, Gpt2TinyVector) {
  Tokenizer t = Tokenizer::from_file(kDataDir + "/gpt2_tiny.json");
  EXPECT_EQ(t.vocab_size(), 266);
  EXPECT_EQ(t.encode("hello world"), (Ids{259, 264}));
  EXPECT_EQ(t.encode("hello"), (Ids{259}));
  EXPECT_EQ(t.encode("help"), (Ids{256, 108, 112}));
  EXPECT_EQ(t.encode("hell"), (Ids{258}));
  EXPECT_EQ(t.encode("lld"), (Ids{257, 100}));  // rank 1 (l l) beats rank 7 (l d)
  EXPECT_EQ(t.encode("world"), (Ids{119, 261, 263}));
  EXPECT_EQ(t.encode(" w"), (Ids{260}));
  EXPECT_EQ(t.encode("hello<|endoftext|>world"), (Ids{259, 265, 119, 261, 263}));
  EXPECT_EQ(t.encode("hello<|endoftext|>world", false),
            (Ids{259, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62, 119, 261, 263}));
  EXPECT_EQ(t.decode(Ids{259, 265, 264}), "hello<|endoftext|> world");
  EXPECT_EQ(t.decode(Ids{259, 265, 264}, true), "hello world");
  EXPECT_EQ(t.token_to_id("Ġworld"), 264);
  EXPECT_EQ(t.token_to_id("<|endoftext|>"), 265);
  EXPECT_FALSE(t.token_to_id("nope").has_value());
  EXPECT_EQ(t.id_to_token(260), "Ġw");
  EXPECT_EQ(t.eos_id(), 265);
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_TRUE(t.is_special(265));
  EXPECT_FALSE(t.is_special(259));
  EXPECT_EQ(t.post_process({1, 2}), (Ids{1, 2}));
}

TEST(TokenizerJson, Llama3TinyVector) {
  Tokenizer t = Tokenizer::from_file(kDataDir + "/llama3_tiny.json");
  EXPECT_EQ(t.vocab_size(), 1002);
  EXPECT_TRUE(t.model().ignore_merges());
  EXPECT_EQ(t.encode("abcd"), (Ids{302}));            // whole piece in vocab: ignore_merges
  EXPECT_EQ(t.encode(" abcd"), (Ids{42, 301, 110}));  // "Ġabcd" is not: merge a b, then ab c
  EXPECT_EQ(t.encode("abcabd"), (Ids{301, 300, 110}));
  EXPECT_EQ(t.encode("12345"), (Ids{59, 60, 61, 62, 63}));  // pieces "123" "45"
  EXPECT_EQ(t.encode("<|begin_of_text|>abcd<|end_of_text|>"), (Ids{1000, 302, 1001}));
  EXPECT_EQ(t.post_process(t.encode("abcd")), (Ids{1000, 302}));
  EXPECT_EQ(t.bos_id(), 1000);
  EXPECT_EQ(t.eos_id(), 1001);
  EXPECT_EQ(t.decode(Ids{1000, 302, 42}), "<|begin_of_text|>abcd ");
  EXPECT_EQ(t.decode(Ids{1000, 302}, true), "abcd");
  // Ids 0..9 and 266..299 are holes.
  EXPECT_THROW(t.decode(Ids{5}), IndexError);
  EXPECT_THROW(t.id_to_token(280), IndexError);

  std::string no_ignore = replace_once(slurp(kDataDir + "/llama3_tiny.json"), "\"ignore_merges\": true",
                                       "\"ignore_merges\": false");
  Tokenizer u = Tokenizer::from_json(no_ignore);
  EXPECT_EQ(u.encode("abcd"), (Ids{301, 110}));
}

TEST(TokenizerJson, RoundTripKeepsEncodingsAndSections) {
  for (const char* f : {"gpt2_tiny.json", "llama3_tiny.json"}) {
    Tokenizer a = Tokenizer::from_file(kDataDir + "/" + f);
    std::string j = a.to_json();
    Tokenizer b = Tokenizer::from_json(j);
    EXPECT_EQ(b.to_json(), j) << f;
    for (const char* s : {"hello world", "abcd abcabd 12345", "<|begin_of_text|>x<|endoftext|>"})
      EXPECT_EQ(a.encode(s), b.encode(s)) << f << ": " << s;
    EXPECT_EQ(a.post_process({7}), b.post_process({7}));
    EXPECT_EQ(a.vocab_size(), b.vocab_size());
  }
  // The string merge form is written; the array form is read.
  std::string j = Tokenizer::from_file(kDataDir + "/llama3_tiny.json").to_json();
  EXPECT_NE(j.find("\"a b\""), std::string::npos);
  EXPECT_NE(j.find("TemplateProcessing"), std::string::npos);
  EXPECT_NE(j.find("\"type\": \"Split\""), std::string::npos);
}

TEST(TokenizerJson, SaveIsAtomicAndLoads) {
  auto dir = std::filesystem::temp_directory_path() / "lmlab_tok_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / "tokenizer.json").string();
  Tokenizer a = Tokenizer::from_file(kDataDir + "/gpt2_tiny.json");
  a.save(path);
  a.save(path);  // overwrite in place
  Tokenizer b = Tokenizer::from_file(path);
  EXPECT_EQ(b.encode("hello world"), (Ids{259, 264}));
  for (auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "temp file left: " << e.path();
  EXPECT_THROW(a.save((dir / "no_such_dir" / "t.json").string()), IoError);
  std::filesystem::remove_all(dir);
}

TEST(TokenizerJson, AddedTokenOptions) {
  std::string base = slurp(kDataDir + "/gpt2_tiny.json");
  std::string j = replace_once(base, R"({"id": 265, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})",
                               R"({"id": 265, "content": "<e>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
    {"id": 266, "content": "ll", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false})");
  Tokenizer t = Tokenizer::from_json(j);
  // lstrip/rstrip swallow the spaces around <e>.
  EXPECT_EQ(t.encode("hello  <e> world"), (Ids{259, 265, 119, 261, 263}));
  // single_word: "ll" alone is the added token, inside a word it is not.
  EXPECT_EQ(t.encode("a ll b"), (Ids{97, 32, 266, 32, 98}));
  EXPECT_EQ(t.encode("hell"), (Ids{258}));
  // Non-special added tokens are matched even when special ones are not.
  EXPECT_EQ(t.encode("a ll <e>", false)[2], 266);
}

TEST(TokenizerJson, AddSpecialTokens) {
  Tokenizer t = Tokenizer::from_file(kDataDir + "/gpt2_tiny.json");
  Ids ids = t.add_special_tokens({"<|im_start|>", "<|endoftext|>", "<pad>"});
  EXPECT_EQ(ids, (Ids{266, 265, 267}));
  EXPECT_EQ(t.vocab_size(), 268);
  EXPECT_EQ(t.pad_id(), 267);
  EXPECT_EQ(t.encode("<|im_start|>hello"), (Ids{266, 259}));
  Tokenizer u = Tokenizer::from_json(t.to_json());
  EXPECT_EQ(u.encode("<|im_start|>hello<pad>"), (Ids{266, 259, 267}));
}

TEST(TokenizerJson, Errors) {
  const std::string good = slurp(kDataDir + "/gpt2_tiny.json");
  ASSERT_NO_THROW(Tokenizer::from_json(good));
  expect_error<FormatError>("{\"model\": ", {"case.json", "malformed JSON"});
  expect_error<FormatError>("[1, 2]", {"case.json", "expected an object"});
  expect_error<FormatError>(replace_once(good, "\"version\": \"1.0\",", "\"version\": \"1.0\", \"extra\": 1,"),
                            {"case.json", "unknown field 'extra'"});
  expect_error<FormatError>(replace_once(good, "\"type\": \"BPE\"", "\"type\": \"WordPiece\""),
                            {"model.type", "WordPiece"});
  expect_error<FormatError>(replace_once(good, "\"type\": \"BPE\"", "\"type\": \"Unigram\""), {"model.type", "Unigram"});
  expect_error<FormatError>(replace_once(good, "\"fuse_unk\": false,", "\"fuse_unk\": false, \"colour\": 1,"),
                            {"model", "unknown field 'colour'"});
  expect_error<FormatError>(replace_once(good, "\"Ġwor ld\"", "\"Ġwor zz\""),
                            {"model.merges[8]", "Ġwor zz", "right part 'zz'"});
  expect_error<FormatError>(replace_once(good, "\"h e\"", "\"q e\""), {"model.merges[0]", "merged token 'qe'"});
  expect_error<FormatError>(replace_once(good, "\"h e\"", "\"h e x\""), {"model.merges[0]", "exactly one space"});
  expect_error<FormatError>(replace_once(good, "\"h e\"", "17"), {"model.merges[0]"});
  expect_error<FormatError>(replace_once(good, "\"Ġworld\": 264", "\"Ġworld\": 263"), {"model.vocab", "id 263"});
  expect_error<FormatError>(replace_once(good, "\"Ġworld\": 264", "\"Ġworld\": \"x\""), {"model.vocab['Ġworld']"});
  expect_error<FormatError>(replace_once(good, "\"Ġworld\": 264", "\"Ġworld\": -3"), {"model.vocab['Ġworld']"});
  // id tables are sized by the largest id: one far beyond what the file holds is refused at once
  expect_error<FormatError>(replace_once(good, "\"Ġworld\": 264", "\"Ġworld\": 2000000000"),
                            {"model.vocab['Ġworld']", "id 2000000000 is far beyond"});
  expect_error<FormatError>(replace_once(good, "\"a\": 97,", ""), {"lacks the byte symbol 'a'"});
  expect_error<FormatError>(replace_once(good, "\"byte_fallback\": false", "\"byte_fallback\": true"),
                            {"model.byte_fallback"});
  expect_error<FormatError>(replace_once(good, "\"type\": \"ByteLevel\", \"add_prefix_space\": false",
                                         "\"type\": \"Whitespace\", \"add_prefix_space\": false"),
                            {"pre_tokenizer.type", "Whitespace"});
  expect_error<FormatError>(replace_once(good, "\"decoder\": {\"type\": \"ByteLevel\"", "\"decoder\": {\"type\": \"WordPiece\""),
                            {"decoder.type", "WordPiece"});
  expect_error<FormatError>(replace_once(good, "\"normalizer\": null", "\"normalizer\": {\"type\": \"Lowercase\"}"),
                            {"normalizer.type", "Lowercase"});
  expect_error<FormatError>(replace_once(good, "\"id\": 265", "\"id\": \"x\""), {"added_tokens[0].id"});
  expect_error<FormatError>(replace_once(good, "\"special\": true}", "\"special\": true, \"foo\": 1}"),
                            {"added_tokens[0]", "unknown field 'foo'"});
  expect_error<FormatError>(replace_once(good, "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}",
                                         "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\", \"invert\": false}"),
                            {"pre_tokenizer.pattern", "regex"});
  expect_error<FormatError>(replace_once(good, "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}",
                                         "\"pre_tokenizer\": null"),
                            {"pre_tokenizer"});
  const std::string llama = slurp(kDataDir + "/llama3_tiny.json");
  expect_error<FormatError>(replace_once(llama, "[\"a\", \"b\"]", "[\"a\", \"b\", \"c\"]"), {"model.merges[0]"});
  expect_error<FormatError>(replace_once(llama, "\"ids\": [1000]", "\"ids\": [5]"), {"post_processor"});
  expect_error<FormatError>(replace_once(llama, "\"behavior\": \"Isolated\"", "\"behavior\": \"Sideways\""),
                            {"pre_tokenizer.pretokenizers[0].behavior", "Sideways"});
  expect_error<FormatError>(replace_once(llama, "\"id\": 1001", "\"id\": 1000"), {"added_tokens[1]", "id 1000"});

  try {
    Tokenizer::from_file("/nonexistent/dir/tokenizer.json");
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/tokenizer.json"), std::string::npos);
  }
  Tokenizer t = Tokenizer::from_json(good);
  try {
    t.decode(Ids{259, 4000});
    ADD_FAILURE();
  } catch (const IndexError& e) {
    EXPECT_NE(std::string(e.what()).find("4000"), std::string::npos) << e.what();
  }
  EXPECT_THROW(t.decode(Ids{-1}), IndexError);
}

TEST(TokenizerJson, DamagedFilesNeverCrash) {
  // Truncations and byte flips of a valid file: each load either succeeds or throws an lmlab
  // error (FormatError in practice), never anything else.
  const std::string good = slurp(kDataDir + "/llama3_tiny.json");
  std::mt19937 rng(7);
  int errors = 0;
  for (int i = 0; i < 400; ++i) {
    std::string s = good;
    if (i % 2 == 0) {
      s.resize(rng() % s.size());
    } else {
      for (int k = 0; k < 3; ++k) s[rng() % s.size()] = "{}[]\":,0 a\\\xFF"[rng() % 12];
    }
    try {
      Tokenizer t = Tokenizer::from_json(s);
      t.encode("abc 123 <|begin_of_text|>");
    } catch (const lmlab::Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 200);
}
