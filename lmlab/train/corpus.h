// Corpus preparation for language-model training: text splits -> tokenizer -> token shards.
//   prepare_brown_text(dir):       dir/{train,val,test}.txt from the Brown corpus (split by document)
//   build_tokenized_corpus(dir, n): trains an n-token byte-level BPE on train.txt, writes
//                                   dir/tokenizer.json and dir/{train,val,test}.tok, and dir/meta.json
//                                   (token counts, bytes per token per split).
// Documents are joined with the end-of-text token so the model sees document boundaries.
#pragma once
#include <functional>
#include <string>

namespace lmlab {

struct CorpusMeta {
  std::string dir;
  int64_t vocab_size = 0;
  int64_t eot_id = 0;
  int64_t tokens[3] = {0, 0, 0};  // train, val, test
  int64_t bytes[3] = {0, 0, 0};
  double tokenizer_seconds = 0;
  double bytes_per_token(int split) const { return tokens[split] ? double(bytes[split]) / double(tokens[split]) : 0; }
  std::string shard(int split) const;       // dir/{train,val,test}.tok
  std::string tokenizer_path() const { return dir + "/tokenizer.json"; }
};

inline constexpr const char* kEndOfText = "<|endoftext|>";
inline constexpr const char* kDocSeparator = "\n\n\n";  // between documents in the .txt splits

// Writes the text splits; returns the number of documents per split via `log`.
void prepare_brown_text(const std::string& dir, const std::string& brown_dir = "",
                        const std::function<void(const std::string&)>& log = {});
CorpusMeta build_tokenized_corpus(const std::string& dir, int64_t vocab_size,
                                  const std::function<void(const std::string&)>& log = {});
// Reads dir/meta.json (FormatError / IoError naming the file; the hint says which command makes it).
CorpusMeta load_corpus_meta(const std::string& dir);
// Both steps, skipped when dir/meta.json exists with the same vocabulary size.
CorpusMeta ensure_brown_corpus(const std::string& dir, int64_t vocab_size,
                               const std::function<void(const std::string&)>& log = {});

}  // namespace lmlab
