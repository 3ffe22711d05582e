// Brown corpus -> splits -> BPE -> shards.
#include "lmlab/train/corpus.h"

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "lmlab/data/brown.h"
#include "lmlab/data/token_shard.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/tokenizer/tokenizer.h"
#include "lmlab/train/checkpoint.h"

namespace fs = std::filesystem;

namespace lmlab {

namespace {
const char* kSplitNames[3] = {"train", "val", "test"};

std::vector<std::string> split_docs(const std::string& text) {
  std::vector<std::string> docs;
  size_t pos = 0;
  std::string sep = kDocSeparator;
  while (pos <= text.size()) {
    size_t e = text.find(sep, pos);
    if (e == std::string::npos) e = text.size();
    if (e > pos) docs.push_back(text.substr(pos, e - pos));
    pos = e + sep.size();
  }
  return docs;
}
}  // namespace

std::string CorpusMeta::shard(int split) const { return dir + "/" + kSplitNames[split] + ".tok"; }

void prepare_brown_text(const std::string& dir, const std::string& brown_dir,
                        const std::function<void(const std::string&)>& log) {
  auto docs = load_brown(brown_dir.empty() ? default_brown_dir() : brown_dir);
  std::string out[3];
  int n[3] = {0, 0, 0};
  for (const auto& d : docs) {
    int s = int(brown_split_of(d.id));
    if (!out[s].empty()) out[s] += kDocSeparator;
    out[s] += d.text;
    ++n[s];
  }
  fs::create_directories(dir);
  for (int s = 0; s < 3; ++s) write_file_atomic(dir + "/" + kSplitNames[s] + ".txt", out[s]);
  if (log)
    log(str_cat("Brown corpus: ", docs.size(), " documents -> train ", n[0], ", val ", n[1], ", test ", n[2], " in ",
                dir));
}

CorpusMeta build_tokenized_corpus(const std::string& dir, int64_t vocab_size,
                                  const std::function<void(const std::string&)>& log) {
  CorpusMeta m;
  m.dir = dir;
  std::vector<std::string> split_docs_v[3];
  for (int s = 0; s < 3; ++s) {
    std::string path = dir + "/" + kSplitNames[s] + ".txt";
    LMLAB_CHECK(fs::exists(path), IoError, "[corpus] missing '", path, "': run `lmlab data prepare` first");
    split_docs_v[s] = split_docs(read_text_file(path));
  }
  TrainOptions to;
  to.vocab_size = int32_t(vocab_size);
  to.special_tokens = {kEndOfText};
  to.preset = PatternPreset::Gpt2;
  auto t0 = std::chrono::steady_clock::now();
  Tokenizer tok = Tokenizer::train(split_docs_v[0], to);
  m.tokenizer_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  tok.set_eos_id(tok.token_to_id(kEndOfText));
  tok.save(m.tokenizer_path());
  m.vocab_size = tok.vocab_size();
  m.eot_id = *tok.token_to_id(kEndOfText);
  if (log) log(str_cat("tokenizer: ", m.vocab_size, " tokens trained in ", m.tokenizer_seconds, " s -> ", m.tokenizer_path()));
  for (int s = 0; s < 3; ++s) {
    auto enc = tok.encode_batch(split_docs_v[s], false);
    std::vector<uint32_t> ids;
    for (size_t d = 0; d < enc.size(); ++d) {
      ids.push_back(uint32_t(m.eot_id));  // every document starts after an end-of-text
      for (int32_t t : enc[d]) ids.push_back(uint32_t(t));
      m.bytes[s] += int64_t(split_docs_v[s][d].size());
    }
    m.tokens[s] = int64_t(ids.size());
    write_token_shard(m.shard(s), ids, uint64_t(m.vocab_size));
    if (log) log(str_cat(kSplitNames[s], ": ", m.tokens[s], " tokens, ", m.bytes_per_token(s), " bytes/token"));
  }
  nlohmann::ordered_json j;
  j["format_version"] = 1;
  j["vocab_size"] = m.vocab_size;
  j["eot_id"] = m.eot_id;
  j["tokenizer_seconds"] = m.tokenizer_seconds;
  for (int s = 0; s < 3; ++s) j[kSplitNames[s]] = {{"tokens", m.tokens[s]}, {"bytes", m.bytes[s]}};
  write_file_atomic(dir + "/meta.json", j.dump(2));
  return m;
}

CorpusMeta load_corpus_meta(const std::string& dir) {
  std::string path = dir + "/meta.json";
  LMLAB_CHECK(fs::exists(path), IoError, "[corpus] missing '", path,
              "': run `lmlab data prepare` and `lmlab tokenizer train` first");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[corpus] '", path, "' is not valid JSON: ", e.what()));
  }
  CorpusMeta m;
  m.dir = dir;
  try {
    m.vocab_size = j.at("vocab_size").get<int64_t>();
    m.eot_id = j.at("eot_id").get<int64_t>();
    m.tokenizer_seconds = j.value("tokenizer_seconds", 0.0);
    for (int s = 0; s < 3; ++s) {
      m.tokens[s] = j.at(kSplitNames[s]).at("tokens").get<int64_t>();
      m.bytes[s] = j.at(kSplitNames[s]).at("bytes").get<int64_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(str_cat("[corpus] '", path, "' lacks a field: ", e.what()));
  }
  return m;
}

CorpusMeta ensure_brown_corpus(const std::string& dir, int64_t vocab_size,
                               const std::function<void(const std::string&)>& log) {
  if (fs::exists(dir + "/meta.json")) {
    CorpusMeta m = load_corpus_meta(dir);
    bool shards = fs::exists(m.shard(0)) && fs::exists(m.shard(1)) && fs::exists(m.tokenizer_path());
    if (m.vocab_size == vocab_size && shards) return m;
  }
  if (!fs::exists(dir + "/train.txt")) prepare_brown_text(dir, "", log);
  return build_tokenized_corpus(dir, vocab_size, log);
}

}  // namespace lmlab
