// `lmlab tokenizer train|encode`: byte-level BPE on a prepared corpus (also writes token shards).
#include <cstdio>

#include "apps/lmlab/commands.h"
#include "lmlab/tokenizer/tokenizer.h"
#include "lmlab/train/corpus.h"

namespace lmlab::app {

void register_tokenizer(CLI::App& app) {
  auto* tk = app.add_subcommand("tokenizer", "Tokenizer training and inspection");
  tk->require_subcommand(1);
  auto* train = tk->add_subcommand("train", "Train byte-level BPE on <data>/train.txt; write tokenizer.json and .tok shards");
  static std::string data = "runs/data/brown";
  static int64_t vocab = 4096;
  train->add_option("--data", data, "Folder made by `lmlab data prepare`")->capture_default_str();
  train->add_option("--vocab", vocab, "Vocabulary size (with the 256 bytes and <|endoftext|>)")->capture_default_str();
  train->callback([] { build_tokenized_corpus(data, vocab, log_line); });
  auto* enc = tk->add_subcommand("encode", "Print the token ids of a text");
  static std::string path, text;
  enc->add_option("-t,--tokenizer", path, "tokenizer.json")->required();
  enc->add_option("-p,--prompt", text, "Text")->required();
  enc->callback([] {
    Tokenizer t = Tokenizer::from_file(path);
    for (int32_t id : t.encode(text)) std::printf("%d ", id);
    std::printf("\n");
  });
}

}  // namespace lmlab::app
