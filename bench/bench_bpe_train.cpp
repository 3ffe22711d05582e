// bpe_train_brown: byte-level BPE training (lmlab/tokenizer/trainer.cpp) to an 8192-token
// vocabulary (1 special token "<|endoftext|>" + 256 bytes + merges, GPT-2 pattern) on ALL of
// Brown (every split, ~6 MB of text; the bar is < 30 s on 2 cores). Compression is measured on
// the val split with a second tokenizer trained the same way on the train split only, so the
// ratio is not flattered by having seen the text. Prints RESULT lines for bench/run.sh: the
// training throughput (MB of text per second, higher is better) and the bytes trained on.
//   bench_bpe_train [--text PATH]   (also writes the same text to PATH, one document after another,
//                                    for the SentencePiece peer: bench/run.sh)
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "lmlab/core/parallel.h"
#include "lmlab/data/brown.h"
#include "lmlab/tokenizer/tokenizer.h"

using namespace lmlab;

int main(int argc, char** argv) {
  std::string text_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--text") == 0 && i + 1 < argc) {
      text_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: bench_bpe_train [--text PATH]\n");
      return 2;
    }
  }
  std::vector<BrownDocument> docs = load_brown(default_brown_dir());
  std::vector<std::string> all, train, val;
  size_t bytes = 0;
  for (const auto& d : docs) {
    all.push_back(d.text);
    bytes += d.text.size();
    Split s = brown_split_of(d.id);
    if (s == Split::Train) train.push_back(d.text);
    else if (s == Split::Val) val.push_back(d.text);
  }
  if (!text_path.empty()) {
    // Sentences one per line, documents separated by a blank line: SentencePiece reads a line as a sentence.
    std::ofstream f(text_path, std::ios::binary);
    for (const auto& t : all) f << t << "\n\n";
    if (!f.good()) {
      std::fprintf(stderr, "bench_bpe_train: cannot write %s\n", text_path.c_str());
      return 1;
    }
  }
  TrainOptions opt;
  opt.vocab_size = 8192;
  opt.special_tokens = {"<|endoftext|>"};
  TrainStats stats;
  double t0 = bench::now_s();
  Tokenizer tok = Tokenizer::train(all, opt, &stats);
  double secs = bench::now_s() - t0;
  std::printf("INFO brown_docs %zu bytes %zu threads %d pieces %lld unique %lld merges %zu vocab %d\n", docs.size(), bytes,
              num_threads(), (long long)stats.total_pieces, (long long)stats.unique_pieces, stats.merge_counts.size(),
              tok.vocab_size());
  std::printf("INFO pretokenize_s %.3f merge_s %.3f\n", stats.pretokenize_seconds, stats.merge_seconds);
  bench::result("bpe_train_brown", double(bytes) / secs / 1e6, "MB/s");
  bench::result("bpe_train_brown.seconds", secs, "s");
  bench::result("bpe_train_brown.bytes", double(bytes), "bytes");

  Tokenizer tok_train = Tokenizer::train(train, opt);
  size_t val_bytes = 0, val_tokens = 0;
  auto ids = tok_train.encode_batch(val);
  for (size_t i = 0; i < val.size(); ++i) {
    val_bytes += val[i].size();
    val_tokens += ids[i].size();
  }
  bench::result("bpe_train_brown.tokens_per_byte", double(val_tokens) / double(val_bytes), "ratio");
  return 0;
}
