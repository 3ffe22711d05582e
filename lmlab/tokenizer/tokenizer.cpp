// Tokenizer: encode, decode and vocabulary queries (see tokenizer.h). The file format lives in
// tokenizer_json.cpp and training in trainer.cpp.
#include "lmlab/tokenizer/tokenizer.h"

#include <algorithm>
#include <deque>
#include <unordered_set>

#include "lmlab/core/error.h"
#include "lmlab/core/parallel.h"

namespace lmlab {

namespace {
constexpr int64_t kMaxAddedId = int64_t(1) << 24;  // same bound as BpeModel's vocab ids
}  // namespace

Tokenizer Tokenizer::from_parts(const std::vector<std::pair<std::string, int32_t>>& vocab,
                                const std::vector<std::pair<std::string, std::string>>& merges,
                                std::vector<AddedToken> added, PreTokenizer pre_tokenizer, bool ignore_merges,
                                const std::string& source) {
  Tokenizer t;
  t.model_ = BpeModel(vocab, merges, ignore_merges, source);
  t.pre_tokenizer_ = std::move(pre_tokenizer);
  t.added_ = std::move(added);
  t.index_added(source);
  t.guess_special_ids();
  return t;
}

Tokenizer Tokenizer::from_spm(SpmModel model, std::vector<AddedToken> added, SpmNormalization normalization,
                             std::vector<SpmDecodeStep> decoder, const std::string& source) {
  Tokenizer t;
  t.kind_ = TokenizerKind::SentencePieceBpe;
  t.spm_ = std::move(model);
  t.spm_norm_ = normalization;
  t.spm_decoder_ = std::move(decoder);
  t.added_ = std::move(added);
  t.index_added(source);
  t.guess_special_ids();
  return t;
}

std::optional<int32_t> Tokenizer::model_token_to_id(std::string_view token) const {
  return kind_ == TokenizerKind::SentencePieceBpe ? spm_.token_to_id(token) : model_.token_to_id(token);
}

int32_t Tokenizer::model_id_limit() const {
  return kind_ == TokenizerKind::SentencePieceBpe ? spm_.id_limit() : model_.id_limit();
}

void Tokenizer::set_post_template(std::vector<int32_t> prefix, std::vector<int32_t> suffix) {
  for (int32_t id : prefix) id_to_token(id);
  for (int32_t id : suffix) id_to_token(id);
  template_prefix_ = std::move(prefix);
  template_suffix_ = std::move(suffix);
  post_processor_json_.clear();  // to_json writes a TemplateProcessing for the new template
}

void Tokenizer::index_added(const std::string& source) {
  std::unordered_set<std::string> contents;
  int64_t limit = model_id_limit();
  for (size_t i = 0; i < added_.size(); ++i) {
    const AddedToken& a = added_[i];
    LMLAB_CHECK(a.id >= 0 && a.id < kMaxAddedId, FormatError, source, ": added_tokens[", i, "] '", a.content,
                "': expected an id in [0, ", kMaxAddedId, "), got ", a.id);
    LMLAB_CHECK(!a.content.empty(), FormatError, source, ": added_tokens[", i, "] (id ", a.id,
                "): expected a non-empty content");
    LMLAB_CHECK(contents.insert(a.content).second, FormatError, source, ": added_tokens[", i, "]: content '",
                a.content, "' appears twice");
    limit = std::max<int64_t>(limit, int64_t(a.id) + 1);
  }
  added_index_.assign(size_t(limit), -1);
  for (size_t i = 0; i < added_.size(); ++i) {
    int32_t& slot = added_index_[size_t(added_[i].id)];
    LMLAB_CHECK(slot < 0, FormatError, source, ": added_tokens[", i, "] '", added_[i].content, "': id ",
                added_[i].id, " is already used by added token '", added_[size_t(slot)].content, "'");
    // An added token whose id is also a vocab id takes over that id (HF's added vocabulary wins).
    slot = int32_t(i);
  }
  matcher_ = AddedTokenMatcher(added_);
}

void Tokenizer::guess_special_ids() {
  auto find = [&](std::initializer_list<const char*> names) -> std::optional<int32_t> {
    for (const char* n : names)
      for (const AddedToken& a : added_)
        if (a.special && a.content == n) return a.id;
    return std::nullopt;
  };
  // Only fills what is unset, so ids set by the caller or by a file's template survive.
  if (!bos_ && !template_prefix_.empty()) bos_ = template_prefix_.front();
  if (!bos_) bos_ = find({"<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>", "<|bos|>", "[BOS]"});
  if (!eos_) eos_ = find({"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|eos|>", "[EOS]"});
  if (!pad_) pad_ = find({"<pad>", "<|pad|>", "[PAD]", "<|padding|>"});
}

bool Tokenizer::encode_into(std::string_view text, bool allow_special, std::vector<int32_t>& out,
                            std::string* error) const {
  std::vector<AddedTokenMatcher::Segment> segments;
  if (matcher_.empty()) segments.push_back({0, text.size(), -1});
  else matcher_.split(text, allow_special, segments);
  std::vector<std::string_view> pieces;
  std::deque<std::string> arena;
  std::vector<std::string> spm_pieces;
  for (const auto& seg : segments) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      continue;
    }
    if (kind_ == TokenizerKind::SentencePieceBpe) {
      spm_pieces.clear();
      spm_norm_.apply(text.substr(seg.begin, seg.end - seg.begin), seg.begin == 0, spm_pieces);
      for (const std::string& p : spm_pieces) spm_.encode_piece(p, out);
      continue;
    }
    pieces.clear();
    arena.clear();
    if (!pre_tokenizer_.split(text.substr(seg.begin, seg.end - seg.begin), pieces, arena, error)) return false;
    for (std::string_view p : pieces) model_.encode_piece(p, out);
  }
  return true;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  std::string error;
  if (!encode_into(text, allow_special, out, &error)) throw ValueError(error);
  return out;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          bool allow_special) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  std::vector<std::string> errors(texts.size());
  std::vector<uint8_t> failed(texts.size(), 0);
  parallel_for(0, int64_t(texts.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      failed[size_t(i)] = !encode_into(texts[size_t(i)], allow_special, out[size_t(i)], &errors[size_t(i)]);
  });
  for (size_t i = 0; i < texts.size(); ++i)
    if (failed[i]) throw ValueError(str_cat(errors[i], " (batch item ", i, ")"));
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  if (kind_ == TokenizerKind::SentencePieceBpe) {
    // HF runs the decoder over the token strings of every id, added tokens included.
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      int32_t id = ids[i];
      if (id >= 0 && size_t(id) < added_index_.size() && added_index_[size_t(id)] >= 0) {
        const AddedToken& a = added_[size_t(added_index_[size_t(id)])];
        if (!(skip_special && a.special)) tokens.push_back(a.content);
        continue;
      }
      const SpmModel::Piece* p = spm_.piece(id);
      LMLAB_CHECK(p != nullptr, IndexError, "[tokenizer] decode: id ", id, " at position ", i,
                  " is not in the vocabulary (vocab_size ", vocab_size(), ")");
      tokens.push_back(p->text);
    }
    return spm_decode_tokens(std::move(tokens), spm_decoder_);
  }
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    if (id >= 0 && size_t(id) < added_index_.size() && added_index_[size_t(id)] >= 0) {
      const AddedToken& a = added_[size_t(added_index_[size_t(id)])];
      if (!(skip_special && a.special)) out += a.content;
      continue;
    }
    const std::string* bytes = model_.token_bytes(id);
    LMLAB_CHECK(bytes != nullptr, IndexError, "[tokenizer] decode: id ", id, " at position ", i,
                " is not in the vocabulary (vocab_size ", vocab_size(), ")");
    out += *bytes;
  }
  return out;
}

std::vector<int32_t> Tokenizer::post_process(std::vector<int32_t> ids) const {
  if (template_prefix_.empty() && template_suffix_.empty()) return ids;
  std::vector<int32_t> out = template_prefix_;
  out.insert(out.end(), ids.begin(), ids.end());
  out.insert(out.end(), template_suffix_.begin(), template_suffix_.end());
  return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  if (kind_ == TokenizerKind::SentencePieceBpe) {
    std::vector<std::string> out;
    spm_norm_.apply(text, true, out);
    return out;
  }
  std::vector<std::string_view> pieces;
  std::deque<std::string> arena;
  std::string error;
  if (!pre_tokenizer_.split(text, pieces, arena, &error)) throw ValueError(error);
  return {pieces.begin(), pieces.end()};
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& a : added_)
    if (a.content == token) return a.id;
  return model_token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id >= 0 && size_t(id) < added_index_.size() && added_index_[size_t(id)] >= 0)
    return added_[size_t(added_index_[size_t(id)])].content;
  if (kind_ == TokenizerKind::SentencePieceBpe) {
    const SpmModel::Piece* p = spm_.piece(id);
    LMLAB_CHECK(p != nullptr, IndexError, "[tokenizer] id_to_token: id ", id, " is not in the vocabulary (vocab_size ",
                vocab_size(), ")");
    return p->text;
  }
  const std::string* tok = model_.id_to_token(id);
  LMLAB_CHECK(tok != nullptr, IndexError, "[tokenizer] id_to_token: id ", id, " is not in the vocabulary (vocab_size ",
              vocab_size(), ")");
  return *tok;
}

int32_t Tokenizer::vocab_size() const {
  return std::max<int32_t>(model_id_limit(), int32_t(added_index_.size()));
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < added_index_.size() && added_index_[size_t(id)] >= 0 &&
         added_[size_t(added_index_[size_t(id)])].special;
}

std::vector<int32_t> Tokenizer::add_special_tokens(const std::vector<std::string>& tokens) {
  std::vector<int32_t> ids;
  for (const std::string& s : tokens) {
    LMLAB_CHECK(!s.empty(), ValueError, "[tokenizer] add_special_tokens: expected a non-empty token");
    auto it = std::find_if(added_.begin(), added_.end(), [&](const AddedToken& a) { return a.content == s; });
    if (it != added_.end()) {
      it->special = true;
      ids.push_back(it->id);
      continue;
    }
    AddedToken a;
    a.content = s;
    a.special = true;
    std::optional<int32_t> in_vocab = model_token_to_id(s);
    a.id = in_vocab ? *in_vocab : vocab_size();
    added_.push_back(a);
    // Re-indexed per token so the next new token sees this one in vocab_size().
    index_added("[tokenizer] add_special_tokens");
    ids.push_back(a.id);
  }
  index_added("[tokenizer] add_special_tokens");
  guess_special_ids();
  return ids;
}

}  // namespace lmlab
