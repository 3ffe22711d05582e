// SentencePiece-style BPE (Kudo & Richardson 2018, "SentencePiece"; the Llama-2 / Mistral
// vocabularies): text is normalized to "▁" (U+2581) for spaces, split into UTF-8 characters, and
// adjacent symbols are merged into vocabulary tokens; characters outside the vocabulary fall back
// to their UTF-8 bytes as "<0xXX>" tokens. Two merge orders, one per source format:
//  - MergeRank: HF tokenizers' BPE model with byte_fallback (tokenizer.json): the pair with the
//    lowest rank in the merge list, leftmost first (tokenizers/src/models/bpe/word.rs);
//  - Score: llama.cpp's llm_tokenizer_spm (GGUF tokenizer.ggml.model "llama"): the adjacent pair
//    whose concatenation is a token with the highest tokenizer.ggml.scores value, leftmost first.
// A merge list converts to scores (a merged token scores minus the rank of its first merge) and
// scores to a merge list (HF's convert_slow_tokenizer generate_merges order), so both formats
// hold the same tokenizer. Normalization and the decoder chain are here too (see spm_text.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lmlab/tokenizer/merge_cache.h"

namespace lmlab {

// GGUF tokenizer.ggml.token_type values (llama.cpp llama_token_type).
enum class SpmTokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// The UTF-8 of "▁", SentencePiece's visible space.
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

class SpmModel {
 public:
  enum class Algorithm { MergeRank, Score };
  struct Piece {
    std::string text;  // UTF-8 with "▁" for spaces, or "<0xXX>" for a byte token
    float score = 0;
    SpmTokenType type = SpmTokenType::Normal;
  };

  SpmModel() = default;
  // From an HF BPE model section. Types are derived: "<0xXX>" -> Byte, unk_token -> Unknown,
  // others Normal (the Tokenizer marks added tokens). Throws FormatError prefixed by `where`
  // naming the field: duplicate ids or tokens, a merge whose part or result is not in the vocab.
  static SpmModel from_merges(const std::vector<std::pair<std::string, int32_t>>& vocab,
                              const std::vector<std::pair<std::string, std::string>>& merges,
                              std::optional<std::string> unk_token, bool byte_fallback, bool fuse_unk,
                              bool ignore_merges, const std::string& where);
  // From GGUF arrays (id = index). Byte tokens are those of type Byte; every byte 0..255 needs one
  // unless there is an unknown token to stand in. Throws FormatError naming `where` and the token.
  static SpmModel from_scores(std::vector<Piece> pieces, std::optional<int32_t> unk_id, const std::string& where);

  // Appends the ids of one normalized piece. Thread-safe.
  void encode_piece(std::string_view text, std::vector<int32_t>& out) const;

  Algorithm algorithm() const { return algorithm_; }
  std::optional<int32_t> token_to_id(std::string_view text) const;
  // nullptr when id is not in the vocab.
  const Piece* piece(int32_t id) const;
  int32_t id_limit() const { return int32_t(pieces_.size()); }
  size_t size() const { return vocab_.size(); }
  std::optional<int32_t> unk_id() const { return unk_; }
  std::optional<std::string> unk_token() const;
  bool byte_fallback() const { return byte_fallback_; }
  bool fuse_unk() const { return fuse_unk_; }
  bool ignore_merges() const { return ignore_merges_; }
  // The merges in rank order, as (left id, right id): the given list (MergeRank) or one derived
  // from the scores (Score): every split of every token into two vocab tokens, ordered by the
  // token's score (high first), then longer left part, then longer right part (stable).
  std::vector<std::pair<int32_t, int32_t>> merges() const;
  // Per-id scores: the given ones (Score) or derived from the merge ranks (MergeRank): a token
  // first made by merge r scores -(r + 1); tokens no merge makes score -(merges + 1).
  std::vector<float> scores() const;

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t result;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void index(const std::string& where);
  // The initial symbols of `text`: one per UTF-8 character in the vocab, bytes (or unk) otherwise.
  void initial_symbols(std::string_view text, std::vector<int32_t>& ids, std::vector<uint32_t>& begin,
                       std::vector<uint32_t>& len) const;
  void merge_by_rank(std::string_view text, std::vector<int32_t>& out) const;
  void merge_by_score(std::string_view text, std::vector<int32_t>& out) const;
  void push_char_fallback(std::string_view ch, std::vector<int32_t>& out, bool& last_unk) const;

  Algorithm algorithm_ = Algorithm::MergeRank;
  std::vector<Piece> pieces_;  // by id; present_[id] = 0 marks a hole
  std::vector<uint8_t> present_;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> vocab_;
  std::vector<std::pair<int32_t, int32_t>> merges_;  // MergeRank only
  std::unordered_map<uint64_t, MergeInfo> merge_index_;
  int32_t byte_id_[256] = {};  // -1 when the byte has no token
  std::optional<int32_t> unk_;
  bool byte_fallback_ = true;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  MergeCache cache_;
};

// How text segments (the runs between added tokens) become what the model sees.
struct SpmNormalization {
  // Legacy: HF normalizer Sequence[Prepend("▁")?, Replace(" ", "▁")] (Llama-2, Mistral) and
  // llama.cpp's add_space_prefix: every non-empty segment gets a "▁" in front when prepend.
  // Metaspace: HF pre-tokenizer Metaspace: "▁" in front unless the segment already starts with
  // one, for every segment (Always) or only one at the start of the text (First); `split` cuts
  // the segment before each "▁".
  enum class Style { Legacy, Metaspace };
  enum class Prepend { Never, First, Always };
  Style style = Style::Legacy;
  Prepend prepend = Prepend::Always;
  bool split = false;

  // Appends the pieces of one segment to `pieces` (owned strings). `at_start`: the segment begins
  // the text.
  void apply(std::string_view segment, bool at_start, std::vector<std::string>& pieces) const;
  // True when a space is added in front of the first segment (the decoder strips one again).
  bool adds_prefix() const { return prepend != Prepend::Never; }
};

// One step of an HF decoder chain over token strings (tokenizers/src/decoders).
struct SpmDecodeStep {
  enum class Kind { Replace, ByteFallback, Fuse, Strip, Metaspace };
  Kind kind = Kind::Fuse;
  std::string pattern, content;  // Replace: literal pattern -> content; Strip: the character
  int32_t start = 0, stop = 0;   // Strip: how many to remove at each end
  SpmNormalization::Prepend prepend = SpmNormalization::Prepend::Always;  // Metaspace
  bool split = true;                                                        // Metaspace (kept)
};

// Llama-2's decoder: Replace("▁", " "), ByteFallback, Fuse, and Strip(" ", 1, 0) when `strip`.
std::vector<SpmDecodeStep> llama_spm_decoder(bool strip);
// Runs the chain over token strings and concatenates the result. ByteFallback turns runs of
// "<0xXX>" tokens into their bytes; unlike HF, which writes U+FFFD for bytes that are not valid
// UTF-8, the bytes are kept, so no byte is ever lost.
std::string spm_decode_tokens(std::vector<std::string> tokens, const std::vector<SpmDecodeStep>& steps);

}  // namespace lmlab
