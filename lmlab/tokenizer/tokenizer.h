// lmlab::Tokenizer: BPE (Sennrich et al. 2016) with added/special tokens, reading and writing
// Hugging Face tokenizer.json (the tokenizers library's format), in two kinds:
//  - ByteLevelBpe: GPT-2's byte-level variant (Radford et al. 2019; GPT-2, Llama-3, Qwen2):
//    ByteLevel/Split pre-tokenizers, ByteLevel decoder;
//  - SentencePieceBpe: Llama-2 / Mistral style (spm.h): "▁" for spaces, characters merged by
//    rank (tokenizer.json) or score (GGUF "llama"), byte fallback to <0xXX> tokens.
// Pipeline of encode: split on added tokens -> pre-tokenize (byte-level) or normalize (SPM) each
// text run -> BPE each piece.
// Files: tokenizer.cpp (encode/decode/vocab), tokenizer_json.cpp + spm_json.cpp (format),
// trainer.cpp (train), spm.cpp + spm_text.cpp (the SentencePiece-style model and text handling).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lmlab/tokenizer/added_tokens.h"
#include "lmlab/tokenizer/bpe.h"
#include "lmlab/tokenizer/pretokenize.h"
#include "lmlab/tokenizer/regex.h"
#include "lmlab/tokenizer/spm.h"

namespace lmlab {

struct TrainOptions {
  int32_t vocab_size = 8192;  // total: special tokens + 256 byte symbols + merges
  int64_t min_frequency = 2;  // stop when the best pair occurs fewer times than this
  std::vector<std::string> special_tokens;  // get ids 0, 1, ... in this order
  PatternPreset preset = PatternPreset::Gpt2;
  std::string pattern;  // a custom pre-tokenization regex; overrides preset when not empty
  int num_threads = 0;  // for pre-tokenization and counting; 0 = lmlab::num_threads()
};

struct TrainStats {
  double pretokenize_seconds = 0;  // pre-tokenize + count unique pieces
  double merge_seconds = 0;        // the merge loop
  int64_t total_pieces = 0;        // pieces in the corpus
  int64_t unique_pieces = 0;       // distinct pieces ("words")
  std::vector<int64_t> merge_counts;   // how often each merge's pair occurred when it was chosen
  std::vector<int64_t> merge_savings;  // tokens each merge removed from the corpus (less than the
                                       // count when the pair overlaps itself, as in "0 0 0")
};

enum class TokenizerKind { ByteLevelBpe, SentencePieceBpe };

class Tokenizer {
 public:
  // Reads a tokenizer.json. IoError names the path when it cannot be read; FormatError names the
  // path and field for malformed JSON, unknown fields, unsupported types, bad vocab or merges.
  // An NFC normalizer (Qwen2) is accepted and kept but not applied: input is taken to be NFC.
  // BPE dropout is kept but not applied (inference never uses it).
  static Tokenizer from_file(const std::string& path);
  // The same from text; `source` names it in error messages.
  static Tokenizer from_json(std::string_view json, const std::string& source = "<tokenizer.json>");
  // Trains byte-level BPE on `texts`: pieces are counted per text (threads split the list of
  // texts), then the most frequent adjacent pair is merged until vocab_size. Equal counts go to
  // the pair whose (left bytes, right bytes) sorts first, so the result is deterministic and the
  // same for any thread count. Special tokens get ids 0..S-1 and bytes S..S+255.
  static Tokenizer train(const std::vector<std::string>& texts, const TrainOptions& options = {},
                         TrainStats* stats = nullptr);
  // Assembles a tokenizer from its parts: vocab (byte-level mapped strings, any ids), merges in
  // rank order, added tokens (ids anywhere; one whose id is also a vocab id takes that id over,
  // as HF's added vocabulary does).
  // For loaders such as GGUF tokenizer metadata. Throws FormatError prefixed by `source`.
  static Tokenizer from_parts(const std::vector<std::pair<std::string, int32_t>>& vocab,
                              const std::vector<std::pair<std::string, std::string>>& merges,
                              std::vector<AddedToken> added, PreTokenizer pre_tokenizer, bool ignore_merges = false,
                              const std::string& source = "<parts>");
  // A SentencePiece-style tokenizer from its parts (for GGUF "llama" metadata): the model, added
  // tokens (ids may also be model ids, as <s> is), how text segments are normalized and the
  // decoder chain. Throws FormatError prefixed by `source`.
  static Tokenizer from_spm(SpmModel model, std::vector<AddedToken> added, SpmNormalization normalization,
                            std::vector<SpmDecodeStep> decoder, const std::string& source = "<parts>");

  // HF tokenizer.json text (version "1.0"); sections read from a file and not interpreted here
  // (normalizer, post_processor, decoder, truncation, padding) are written back with the same
  // content ("type" first, other keys sorted).
  std::string to_json(int indent = 2) const;
  // Writes to_json() atomically (temp file, fsync, rename). IoError names the path.
  void save(const std::string& path) const;

  // allow_special=false encodes special-token text as ordinary text (non-special added tokens are
  // still matched, as in HF). Never loses a byte: decode(encode(s)) == s for any bytes s, valid
  // UTF-8 or not, unless the file asks for changes (lstrip/rstrip added tokens, a Removed split,
  // add_prefix_space). SentencePiece-style tokenizers add a "▁" in front of text (see
  // SpmNormalization) that their decoder strips again, so a leading space can be lost there (HF
  // does the same: Metaspace "first" encodes " x" like "x").
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  // Encodes texts in parallel (lmlab::parallel_for); same results as encode one by one.
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts,
                                                 bool allow_special = true) const;
  // Concatenated bytes of the ids; added tokens as their content, special ones left out when
  // skip_special. SentencePiece-style: the tokenizer.json decoder chain (spm_decode_tokens).
  // IndexError names an id that is not in the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // Applies the post_processor's single-sequence template (HF TemplateProcessing, e.g. Llama-3's
  // "<|begin_of_text|> $A"); identity when there is none.
  std::vector<int32_t> post_process(std::vector<int32_t> ids) const;
  // The template's ids before and after the sequence; set_post_template replaces the template
  // (and the post_processor section written by to_json). For GGUF add_bos_token / add_eos_token.
  const std::vector<int32_t>& post_template_prefix() const { return template_prefix_; }
  const std::vector<int32_t>& post_template_suffix() const { return template_suffix_; }
  void set_post_template(std::vector<int32_t> prefix, std::vector<int32_t> suffix);
  // The pre-tokenized (byte-level) or normalized (SPM) pieces of plain text (no added-token
  // splitting); for tests and inspection.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  // An added token's content, or a vocab string in the model's alphabet ("Ġthe", "▁the").
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The inverse; IndexError for an unknown id.
  std::string id_to_token(int32_t id) const;
  // One past the largest id in use (vocab or added).
  int32_t vocab_size() const;
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  bool is_special(int32_t id) const;
  // Adds special tokens (existing added tokens become special; a vocab string keeps its id; new
  // ones get ids from vocab_size() up). Returns their ids in order.
  std::vector<int32_t> add_special_tokens(const std::vector<std::string>& tokens);

  // Guessed from added tokens' names (and the post_processor template for bos); settable.
  std::optional<int32_t> bos_id() const { return bos_; }
  std::optional<int32_t> eos_id() const { return eos_; }
  std::optional<int32_t> pad_id() const { return pad_; }
  void set_bos_id(std::optional<int32_t> id) { bos_ = id; }
  void set_eos_id(std::optional<int32_t> id) { eos_ = id; }
  void set_pad_id(std::optional<int32_t> id) { pad_ = id; }

  TokenizerKind kind() const { return kind_; }
  // The byte-level model (empty for SentencePiece-style tokenizers).
  const BpeModel& model() const { return model_; }
  const PreTokenizer& pre_tokenizer() const { return pre_tokenizer_; }
  // The SentencePiece-style parts (empty for byte-level tokenizers).
  const SpmModel& spm_model() const { return spm_; }
  const SpmNormalization& spm_normalization() const { return spm_norm_; }
  const std::vector<SpmDecodeStep>& spm_decoder() const { return spm_decoder_; }

 private:
  friend struct TokenizerJson;
  Tokenizer() = default;
  void index_added(const std::string& source);
  void guess_special_ids();
  // Never throws (safe in parallel regions); false with `error` set on a regex failure.
  bool encode_into(std::string_view text, bool allow_special, std::vector<int32_t>& out, std::string* error) const;

  std::optional<int32_t> model_token_to_id(std::string_view token) const;
  int32_t model_id_limit() const;

  TokenizerKind kind_ = TokenizerKind::ByteLevelBpe;
  BpeModel model_;
  PreTokenizer pre_tokenizer_;
  SpmModel spm_;
  SpmNormalization spm_norm_;
  std::vector<SpmDecodeStep> spm_decoder_;
  std::vector<AddedToken> added_;
  AddedTokenMatcher matcher_;
  std::vector<int32_t> added_index_;  // id -> index into added_, or -1
  std::optional<int32_t> bos_, eos_, pad_;
  std::vector<int32_t> template_prefix_, template_suffix_;  // post_processor single template

  // tokenizer.json sections kept verbatim (JSON text) for round trips; empty = write defaults.
  std::string normalizer_json_, post_processor_json_, decoder_json_, truncation_json_, padding_json_;
  std::string dropout_json_, unk_token_json_;
  bool fuse_unk_ = false;
};

}  // namespace lmlab
