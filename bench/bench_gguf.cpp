// lmlab's side of the llama.cpp comparison (bench/llama_cpp.sh): the issue's ~100M-parameter
// Llama model and llama-bench's two measurements on a .gguf, run through lmlab's own GGUF loading.
//
//   bench_gguf --make-model DIR      random-weight HF folder (config.json, model.safetensors,
//                                    tokenizer.json): d 768, 12 layers, 12 heads, vocab 32000,
//                                    intermediate 2048, untied lm_head, fixed seed
//   bench_gguf --gguf FILE [-p 512] [-n 128] [-t 2] [-r 3]
//                                    prints one JSON object: pp (one forward of p prompt tokens,
//                                    logits of the last one) and tg (n single-token decode steps
//                                    with the KV cache), tokens/s, median of r reps and each rep
//
// Timing follows llama-bench (examples/llama-bench): each rep starts from an empty cache; pp feeds
// p random tokens in one batch and only the last position gets logits (llama_batch_get_one); tg
// starts from an empty cache and feeds n tokens one at a time, each with its logits; one warmup
// run of each comes first and is not counted.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "lmlab/data/brown.h"
#include "lmlab/io/safetensors.h"
#include "lmlab/lmlab.h"
#include "lmlab/models/gguf_model.h"

using namespace lmlab;

namespace {

constexpr int32_t kVocab = 32000;

TransformerConfig model_100m_config() {
  TransformerConfig cfg;
  cfg.vocab_size = kVocab;
  cfg.hidden_size = 768;
  cfg.intermediate_size = 2048;
  cfg.num_hidden_layers = 12;
  cfg.num_attention_heads = 12;
  cfg.num_key_value_heads = 12;
  cfg.max_position_embeddings = 2048;  // room for pp512 + tg128 and longer runs
  cfg.tie_word_embeddings = false;
  cfg.bos_token_id = 0;
  cfg.eos_token_id = 0;
  return cfg;
}

// llama.cpp will not load a .gguf without tokenizer metadata (a "gpt2" vocab needs its merges),
// and its vocabulary must match the embedding rows: so the model gets a real byte-level BPE of
// exactly kVocab tokens, trained on Brown's train split.
Tokenizer brown_tokenizer() {
  std::vector<std::string> texts;
  for (auto& d : load_brown(default_brown_dir()))
    if (brown_split_of(d.id) == Split::Train) texts.push_back(std::move(d.text));
  TrainOptions o;
  o.vocab_size = kVocab;
  o.min_frequency = 1;  // Brown alone has too few pairs seen twice for 32000 tokens
  o.special_tokens = {"<|endoftext|>"};
  Tokenizer tok = Tokenizer::train(texts, o);
  // Should the merges run out before kVocab, filler specials keep the vocabulary at kVocab.
  std::vector<std::string> filler;
  for (int32_t i = tok.vocab_size(); i < kVocab; ++i) filler.push_back("<|filler_" + std::to_string(i) + "|>");
  if (!filler.empty()) tok.add_special_tokens(filler);
  LMLAB_CHECK(tok.vocab_size() == kVocab, ValueError, "[bench_gguf] tokenizer has ", tok.vocab_size(),
              " tokens, expected ", kVocab);
  tok.set_bos_id(0);
  tok.set_eos_id(0);
  return tok;
}

void make_model(const std::string& dir) {
  std::filesystem::create_directories(dir);
  TransformerConfig cfg = model_100m_config();
  double t0 = bench::now_s();
  Tokenizer tok = brown_tokenizer();
  tok.save(dir + "/tokenizer.json");
  double t1 = bench::now_s();
  Transformer m(cfg, /*seed=*/1234);
  save_safetensors(dir + "/model.safetensors", m.named_parameters());
  write_file_atomic(dir + "/config.json", cfg.to_json());
  int64_t n = 0;
  for (const auto& [name, p] : m.named_parameters()) n += p.numel();
  std::fprintf(stderr, "[bench_gguf] wrote %s: %lld parameters (tokenizer %.1f s, model %.1f s)\n", dir.c_str(),
               static_cast<long long>(n), t1 - t0, bench::now_s() - t1);
}

Tensor random_ids(Generator& g, int64_t n) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (auto& x : ids) x = g.randint(0, kVocab);
  return Tensor::from_vector(ids, {1, n});
}

struct Timing {
  double median = 0;
  std::vector<double> tok_s;
};

Timing time_reps(const std::function<double()>& run_once, int reps, int64_t tokens) {
  run_once();  // warmup
  Timing t;
  for (int r = 0; r < reps; ++r) t.tok_s.push_back(double(tokens) / run_once());
  std::vector<double> s = t.tok_s;
  std::sort(s.begin(), s.end());
  t.median = s[s.size() / 2];
  return t;
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  char buf[64];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? ", " : "", v[i]);
    s += buf;
  }
  return s + "]";
}

void bench_file(const std::string& path, int64_t p, int64_t n, int threads, int reps) {
  set_num_threads(threads);
  NoGrad ng;
  double t0 = bench::now_s();
  GgufModel loaded = load_gguf_model(path);
  double load_s = bench::now_s() - t0;
  const Transformer& m = *loaded.model;
  LMLAB_CHECK(m.cfg.max_position_embeddings >= std::max(p, n), ValueError, "[bench_gguf] ", path, ": context ",
              m.cfg.max_position_embeddings, " is shorter than -p ", p, " / -n ", n);
  Generator g(42);

  Timing pp, tg;
  if (p > 0) {
    pp = time_reps([&] {
      Tensor ids = random_ids(g, p);
      CacheSet cache = m.new_cache();
      double s0 = bench::now_s();
      Tensor h = m.forward_hidden(ids, &cache);
      Tensor last = m.logits(h.narrow(1, p - 1, 1));
      (void)last.data<float>();
      return bench::now_s() - s0;
    }, reps, p);
  }
  if (n > 0) {
    tg = time_reps([&] {
      Tensor ids = random_ids(g, n);
      CacheSet cache = m.new_cache();
      double s0 = bench::now_s();
      for (int64_t i = 0; i < n; ++i) {
        Tensor l = m.forward(ids.narrow(1, i, 1).contiguous(), &cache);
        (void)l.data<float>();
      }
      return bench::now_s() - s0;
    }, reps, n);
  }
  std::printf("{\"file\": \"%s\", \"threads\": %d, \"reps\": %d, \"load_s\": %.3f,\n", path.c_str(), threads, reps,
              load_s);
  std::printf(" \"pp\": {\"n_prompt\": %lld, \"tokens_per_s\": %.3f, \"samples\": %s},\n", static_cast<long long>(p),
              pp.median, json_list(pp.tok_s).c_str());
  std::printf(" \"tg\": {\"n_gen\": %lld, \"tokens_per_s\": %.3f, \"samples\": %s}}\n", static_cast<long long>(n),
              tg.median, json_list(tg.tok_s).c_str());
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: bench_gguf --make-model DIR\n"
               "       bench_gguf --gguf FILE [-p 512] [-n 128] [-t 2] [-r 3]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string make_dir, gguf;
  int64_t p = 512, n = 128;
  int threads = 2, reps = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--make-model") make_dir = next();
    else if (a == "--gguf") gguf = next();
    else if (a == "-p") p = std::stoll(next());
    else if (a == "-n") n = std::stoll(next());
    else if (a == "-t") threads = std::stoi(next());
    else if (a == "-r") reps = std::stoi(next());
    else usage();
  }
  if (make_dir.empty() == gguf.empty() || reps < 1 || threads < 1 || p < 0 || n < 0) usage();
  try {
    if (!make_dir.empty()) make_model(make_dir);
    else bench_file(gguf, p, n, threads, reps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gguf: %s\n", e.what());
    return 1;
  }
  return 0;
}
