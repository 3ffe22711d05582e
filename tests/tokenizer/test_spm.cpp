// SentencePiece-style (Llama-2 / Mistral) tokenizers: tests/tokenizer/data/spm_tiny.json and the
// ids, template ids and decoded strings that Tokenizers.js gives for it (spm_tiny_golden.json,
// written by tools/tokenizer-js/make_spm_fixture.mjs), in the legacy normalizer layout and the
// Metaspace layout; the score-ordered (llama.cpp) merge loop against the rank-ordered one; the
// merges <-> scores conversions; save/load round trips; unknown-token and decoder details; errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "lmlab/core/error.h"
#include "lmlab/tokenizer/tokenizer.h"
#include "tests/test_util.h"

using namespace lmlab;
using lmlab::test::expect_error;
using lmlab::test::slurp;
using Ids = std::vector<int32_t>;

namespace {

const std::string kDataDir = std::string(LMLAB_FIXTURE_DIR) + "/../tokenizer/data";
const std::string kMultilingual = std::string(LMLAB_FIXTURE_DIR) + "/../data/multilingual.txt";

const nlohmann::json& golden() {
  static const nlohmann::json g = nlohmann::json::parse(slurp(kDataDir + "/spm_tiny_golden.json"));
  return g;
}

const Tokenizer& legacy() {
  static const Tokenizer t = Tokenizer::from_file(kDataDir + "/spm_tiny.json");
  return t;
}

std::string metaspace_json() {
  nlohmann::json j = nlohmann::json::parse(slurp(kDataDir + "/spm_tiny.json"));
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  return j.dump();
}

const Tokenizer& metaspace() {
  static const Tokenizer t = Tokenizer::from_json(metaspace_json(), "spm_tiny_metaspace.json");
  return t;
}

// The same vocabulary as a GGUF "llama" vocab would hold it: scores and types, no merges.
Tokenizer from_scores(const Tokenizer& json_tok) {
  const auto& g = golden();
  std::vector<SpmModel::Piece> pieces;
  for (size_t id = 0; id < g["scores"].size(); ++id)
    pieces.push_back({json_tok.id_to_token(int32_t(id)), g["scores"][id].get<float>(),
                      SpmTokenType(g["types"][id].get<int32_t>())});
  std::vector<AddedToken> added = json_tok.added_tokens();
  SpmModel m = SpmModel::from_scores(std::move(pieces), 0, "scores");
  return Tokenizer::from_spm(std::move(m), std::move(added), json_tok.spm_normalization(), llama_spm_decoder(true),
                             "scores");
}

void check_against_golden(const Tokenizer& t, const char* layout) {
  for (const auto& c : golden()["cases"]) {
    const std::string text = c["text"];
    const auto& want = c[layout];
    SCOPED_TRACE(std::string(layout) + ": " + text.substr(0, 40));
    Ids ids = t.encode(text);
    EXPECT_EQ(ids, want["ids"].get<Ids>());
    EXPECT_EQ(t.post_process(ids), want["with_special"].get<Ids>());
    EXPECT_EQ(t.decode(ids), want["decoded"].get<std::string>());
    Ids ws = want["with_special"].get<Ids>();
    EXPECT_EQ(t.decode(ws), want["decoded_with_special"].get<std::string>());
    EXPECT_EQ(t.decode(ws, true), want["decoded_skip_special"].get<std::string>());
  }
}

}  // namespace

TEST(Spm, LegacyLayoutMatchesTokenizersJs) {
  ASSERT_EQ(legacy().kind(), TokenizerKind::SentencePieceBpe);
  EXPECT_EQ(legacy().bos_id(), 1);
  EXPECT_EQ(legacy().eos_id(), 2);
  EXPECT_EQ(legacy().spm_model().unk_id(), 0);
  check_against_golden(legacy(), "legacy");
}

TEST(Spm, MetaspaceLayoutMatchesTokenizersJs) { check_against_golden(metaspace(), "metaspace"); }

TEST(Spm, HandCheckedPieces) {
  // "ẞ" is in the vocab as a character; "東" is not, so its three UTF-8 bytes come out as
  // <0xE6> <0x9D> <0xB1> (byte b has id 3 + b).
  Ids ids = legacy().encode("ẞ東");
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(legacy().id_to_token(ids[0]), "\u2581");
  EXPECT_EQ(legacy().id_to_token(ids[1]), "ẞ");
  EXPECT_EQ((Ids{ids[2], ids[3], ids[4]}), (Ids{3 + 0xE6, 3 + 0x9D, 3 + 0xB1}));
  EXPECT_EQ(legacy().pre_tokenize("a b"), (std::vector<std::string>{"\u2581a\u2581b"}));
  // Special-token text is ordinary text when not allowed: no id 1 then.
  for (int32_t id : legacy().encode("<s>", false)) EXPECT_NE(id, 1);
}

TEST(Spm, ScoreOrderEqualsMergeRankOrder) {
  // The fixture's merges were made from its scores by HF's generate_merges (in JS); ours must
  // make the same list, and llama.cpp's score loop must tokenize like HF's rank loop.
  Tokenizer s = from_scores(legacy());
  EXPECT_EQ(s.spm_model().algorithm(), SpmModel::Algorithm::Score);
  EXPECT_EQ(s.spm_model().merges(), legacy().spm_model().merges());
  for (const auto& c : golden()["cases"]) {
    SCOPED_TRACE(c["text"].get<std::string>().substr(0, 40));
    EXPECT_EQ(s.encode(c["text"].get<std::string>()), c["legacy"]["ids"].get<Ids>());
  }
  // Scores derived from the ranks order the merged tokens the same way.
  std::vector<float> derived = legacy().spm_model().scores();
  const auto merges = legacy().spm_model().merges();
  for (size_t r = 1; r < merges.size(); ++r) {
    auto made = [&](size_t i) { return *legacy().token_to_id(legacy().id_to_token(merges[i].first) + legacy().id_to_token(merges[i].second)); };
    EXPECT_GE(derived[size_t(made(r - 1))], derived[size_t(made(r))]) << r;
  }
}

TEST(Spm, MultilingualRoundTrip) {
  const std::string text = slurp(kMultilingual);
  ASSERT_GT(text.size(), 1000u);
  for (const Tokenizer* t : {&legacy(), &metaspace()}) {
    Ids ids = t->encode(text);
    EXPECT_EQ(t->decode(ids), text);
    // Per line as well (each line on its own gets the leading "▁").
    size_t from = 0;
    while (from < text.size()) {
      size_t nl = text.find('\n', from);
      std::string line = text.substr(from, nl - from);
      from = nl + 1;
      // The documented exception: Metaspace "first" does not add a "▁" before a leading space,
      // and the decoder strips one, so " x" comes back as "x".
      std::string want = t == &metaspace() && line.starts_with(' ') ? line.substr(1) : line;
      EXPECT_EQ(t->decode(t->encode(line)), want) << line;
    }
  }
}

TEST(Spm, SaveAndLoadRoundTrip) {
  const std::string text = slurp(kMultilingual);
  for (const Tokenizer* t : {&legacy(), &metaspace()}) {
    std::string json = t->to_json();
    Tokenizer back = Tokenizer::from_json(json, "saved.json");
    EXPECT_EQ(back.kind(), TokenizerKind::SentencePieceBpe);
    EXPECT_EQ(back.encode(text), t->encode(text));
    EXPECT_EQ(back.post_process({5}), t->post_process({5}));
    EXPECT_EQ(back.to_json(), json);
  }
  // The score form saves as a Llama-2 tokenizer.json with merges derived from the scores.
  Tokenizer s = from_scores(legacy());
  Tokenizer back = Tokenizer::from_json(s.to_json(), "from_scores.json");
  EXPECT_EQ(back.spm_model().algorithm(), SpmModel::Algorithm::MergeRank);
  EXPECT_EQ(back.encode(text), legacy().encode(text));
  auto j = nlohmann::json::parse(s.to_json());
  EXPECT_EQ(j["model"]["byte_fallback"], true);
  EXPECT_EQ(j["normalizer"]["normalizers"][0]["type"], "Prepend");
  EXPECT_EQ(j["decoder"]["decoders"][3]["type"], "Strip");
}

TEST(Spm, UnknownTokenWithoutByteFallback) {
  // HF BPE without byte_fallback: characters outside the vocab become <unk>, one per run with
  // fuse_unk; merges apply around them.
  std::vector<std::pair<std::string, int32_t>> vocab = {{"<unk>", 0}, {"\u2581", 1}, {"a", 2}, {"b", 3}, {"\u2581a", 4}};
  std::vector<std::pair<std::string, std::string>> merges = {{"\u2581", "a"}};
  SpmNormalization n;
  for (bool fuse : {false, true}) {
    SpmModel m = SpmModel::from_merges(vocab, merges, "<unk>", false, fuse, false, "t");
    Tokenizer t = Tokenizer::from_spm(std::move(m), {}, n, llama_spm_decoder(true), "t");
    EXPECT_EQ(t.encode("axyb"), fuse ? (Ids{4, 0, 3}) : (Ids{4, 0, 0, 3}));
  }
  // Without an unk token the character is dropped, as HF does.
  SpmModel m = SpmModel::from_merges(vocab, merges, std::nullopt, false, false, false, "t");
  EXPECT_EQ(Tokenizer::from_spm(std::move(m), {}, n, {}, "t").encode("axb"), (Ids{4, 3}));
}

TEST(Spm, ScoreLoopPrefersHighScoreThenLeftmost) {
  // "▁abc": ab (-1) beats bc (-2); with equal scores the leftmost pair wins.
  auto make = [](float ab, float bc) {
    std::vector<SpmModel::Piece> p = {{"<unk>", 0, SpmTokenType::Unknown}, {"\u2581", -9, SpmTokenType::Normal},
                                      {"a", -9, SpmTokenType::Normal},      {"b", -9, SpmTokenType::Normal},
                                      {"c", -9, SpmTokenType::Normal},      {"ab", ab, SpmTokenType::Normal},
                                      {"bc", bc, SpmTokenType::Normal}};
    return Tokenizer::from_spm(SpmModel::from_scores(p, 0, "t"), {}, SpmNormalization{}, llama_spm_decoder(true), "t");
  };
  EXPECT_EQ(make(-1, -2).encode("abc"), (Ids{1, 5, 4}));
  EXPECT_EQ(make(-2, -1).encode("abc"), (Ids{1, 2, 6}));
  EXPECT_EQ(make(-1, -1).encode("abc"), (Ids{1, 5, 4}));
  // No byte tokens: unknown characters map to <unk>.
  EXPECT_EQ(make(-1, -1).encode("a€"), (Ids{1, 2, 0, 0, 0}));
}

TEST(Spm, InvalidUtf8IsKept) {
  const std::string bad = "ok \xff\xfe end \xe4\xb8";
  EXPECT_EQ(legacy().decode(legacy().encode(bad)), bad);
}

TEST(Spm, DecoderSteps) {
  // Strip removes up to `start` leading and `stop` trailing copies; Metaspace drops "▁" in the
  // first token only (all of them there, as HF does).
  SpmDecodeStep strip;
  strip.kind = SpmDecodeStep::Kind::Strip;
  strip.content = " ";
  strip.start = 2;
  strip.stop = 1;
  EXPECT_EQ(spm_decode_tokens({"   a  "}, {strip}), " a ");
  SpmDecodeStep meta;
  meta.kind = SpmDecodeStep::Kind::Metaspace;
  meta.pattern = "\u2581";
  EXPECT_EQ(spm_decode_tokens({"\u2581a\u2581b", "\u2581c"}, {meta}), "ab c");
  // ByteFallback joins a run of byte tokens; a run that is not UTF-8 keeps its bytes.
  SpmDecodeStep bf;
  bf.kind = SpmDecodeStep::Kind::ByteFallback;
  EXPECT_EQ(spm_decode_tokens({"<0xE6>", "<0x9D>", "<0xB1>", "x", "<0xFF>"}, {bf}), "東x\xff");
}

TEST(Spm, JsonErrorsNameTheField) {
  const std::string good = slurp(kDataDir + "/spm_tiny.json");
  auto json = [&](auto&& edit) {
    nlohmann::json j = nlohmann::json::parse(good);
    edit(j);
    return j.dump();
  };
  auto fails = [&](const std::string& text, const std::string& needle) {
    expect_error<FormatError>([&] { Tokenizer::from_json(text, "bad.json"); }, needle);
  };
  fails(json([](auto& j) { j["normalizer"]["normalizers"][1]["content"] = "_"; }), "normalizer.normalizers[1]");
  fails(json([](auto& j) { j["normalizer"]["normalizers"][0] = {{"type", "NFKC"}}; }), "unsupported normalizer 'NFKC'");
  fails(json([](auto& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}}; }),
        "expected null with a Metaspace pre-tokenizer");
  fails(json([](auto& j) {
          j["normalizer"] = nullptr;
          j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
        }),
        "pre_tokenizer.replacement");
  fails(json([](auto& j) {
          j["normalizer"] = nullptr;
          j["pre_tokenizer"] = {{"type", "Metaspace"}, {"prepend_scheme", "sometimes"}};
        }),
        "pre_tokenizer.prepend_scheme");
  fails(json([](auto& j) { j["decoder"]["decoders"][2] = {{"type", "WordPiece"}}; }), "decoder.decoders[2].type");
  fails(json([](auto& j) { j["decoder"]["decoders"][3]["start"] = -1; }), "decoder.decoders[3].start");
  fails(json([](auto& j) { j["model"]["unk_token"] = "<nope>"; }), "model.unk_token '<nope>'");
  fails(json([](auto& j) { j["model"]["merges"][0] = "\u2581 zzz"; }), "model.merges[0]");
}

TEST(Spm, DamagedFilesNeverCrash) {
  // Truncations and byte flips of the fixture, with the damage aimed at the sections this kind
  // reads (normalizer, pre_tokenizer, decoder, model flags): each load succeeds or throws an lmlab
  // error, never anything else.
  const std::string good = slurp(kDataDir + "/spm_tiny.json");
  const size_t head = good.find("\"vocab\"");
  ASSERT_NE(head, std::string::npos);
  std::mt19937 rng(11);
  int errors = 0;
  for (int i = 0; i < 400; ++i) {
    std::string s = good;
    if (i % 2 == 0) {
      s.resize(rng() % s.size());
    } else {
      for (int k = 0; k < 3; ++k) s[rng() % head] = "{}[]\":,0 a\\\xFF"[rng() % 12];
    }
    try {
      Tokenizer t = Tokenizer::from_json(s);
      t.decode(t.encode("Hello <s> wörld 東"));
    } catch (const lmlab::Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, 200);
}
