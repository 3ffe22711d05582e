// Generation: samplers (greedy, temperature, top-k, top-p, min-p, repetition penalty, seeding),
// InferState fork/truncate, batched generation equal to one-by-one, stop strings, streaming,
// prompts longer than the context.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "lmlab/infer/generate.h"
#include "lmlab/lmlab.h"
#include "tests/batched_rows_check.h"

using namespace lmlab;

namespace {
TransformerConfig tiny() {
  TransformerConfig c;
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 48;
  return c;
}
}  // namespace

TEST(Sampler, GreedyAndFilters) {
  std::vector<float> l = {0.0f, 3.0f, 1.0f, 2.9f, -5.0f};
  SamplerConfig g;
  g.temperature = 0;
  Generator gen(1);
  EXPECT_EQ(sample_token(l.data(), 5, {}, g, gen), 1);
  // top-k 1 is greedy whatever the temperature
  SamplerConfig k1;
  k1.top_k = 1;
  k1.temperature = 5.0;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(l.data(), 5, {}, k1, gen), 1);
  // top-k 2: only tokens 1 and 3 ever appear
  SamplerConfig k2;
  k2.top_k = 2;
  k2.top_p = 1.0;
  k2.min_p = 0;
  k2.temperature = 1.0;
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(sample_token(l.data(), 5, {}, k2, gen));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3}));
  // min-p 0.5 keeps tokens within half the top probability: 1 and 3 (e^-0.1 ~ 0.9), not 2 (e^-2)
  SamplerConfig mp;
  mp.top_k = 0;
  mp.top_p = 1.0;
  mp.min_p = 0.5;
  seen.clear();
  for (int i = 0; i < 200; ++i) seen.insert(sample_token(l.data(), 5, {}, mp, gen));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3}));
  // top-p 0.5: the top token alone already holds > 0.5 of the mass? p(1) = e^3/Z ~ 0.47 -> keep 1 and 3
  SamplerConfig tp;
  tp.top_k = 0;
  tp.min_p = 0;
  tp.top_p = 0.5;
  seen.clear();
  for (int i = 0; i < 200; ++i) seen.insert(sample_token(l.data(), 5, {}, tp, gen));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 3}));
}

TEST(Sampler, TemperatureMatchesSoftmaxAndSeedReproduces) {
  std::vector<float> l = {1.0f, 2.0f, 0.0f};
  SamplerConfig s;
  s.top_k = 0;
  s.top_p = 1.0;
  s.min_p = 0;
  s.temperature = 2.0;
  Generator gen(5);
  std::map<int64_t, int> cnt;
  const int n = 20000;
  for (int i = 0; i < n; ++i) cnt[sample_token(l.data(), 3, {}, s, gen)]++;
  double z = std::exp(0.5) + std::exp(1.0) + 1.0;
  EXPECT_NEAR(cnt[1] / double(n), std::exp(1.0) / z, 0.015);
  EXPECT_NEAR(cnt[2] / double(n), 1.0 / z, 0.015);
  Generator a(9), b(9);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(l.data(), 3, {}, s, a), sample_token(l.data(), 3, {}, s, b));
}

// The chain's kept tokens against a reference that sorts the whole vocabulary (the textbook chain):
// same tokens, same weights, and the same walking order wherever a filter sorted them.
TEST(Sampler, CandidatesMatchAFullSortReference) {
  const int64_t V = 3000;
  Generator g(3);
  std::vector<float> l(static_cast<size_t>(V));
  for (auto& x : l) x = float(std::round(g.normal() * 8.0) / 4.0);  // many ties
  for (int64_t top_k : {int64_t(0), int64_t(40), V, V + 5})
    for (double top_p : {1.0, 0.9, 0.3})
      for (double min_p : {0.0, 0.05}) {
        SCOPED_TRACE(std::to_string(top_k) + " " + std::to_string(top_p) + " " + std::to_string(min_p));
        SamplerConfig c;
        c.temperature = 0.7;
        c.top_k = top_k;
        c.top_p = top_p;
        c.min_p = min_p;
        // reference: sort all, cut top-k, probabilities over those, top-p prefix, min-p prefix
        std::vector<int32_t> idx(static_cast<size_t>(V));
        std::iota(idx.begin(), idx.end(), 0);
        std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
        if (top_k > 0 && top_k < V) idx.resize(size_t(top_k));
        double z = 0;
        for (int32_t i : idx) z += std::exp(double(l[i] - l[idx[0]]));
        size_t keep = idx.size();
        double cum = 0;
        for (size_t i = 0; i < idx.size() && top_p < 1; ++i)
          if ((cum += std::exp(double(l[idx[i]] - l[idx[0]])) / z) >= top_p) { keep = i + 1; break; }
        size_t n = 1;
        while (min_p > 0 && n < keep && std::exp(double(l[idx[n]] - l[idx[0]])) >= min_p) ++n;
        if (min_p > 0) keep = n;
        idx.resize(keep);
        SamplingCandidates got = sampling_candidates(l.data(), V, {}, c);
        ASSERT_EQ(got.ids.size(), idx.size());
        const bool ordered = top_p < 1 || (top_k > 0 && top_k < V) || min_p > 0;
        if (ordered) {
          EXPECT_EQ(got.ids, idx);
        }
        std::vector<int32_t> a = got.ids, b = idx;
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        EXPECT_EQ(a, b);
        for (size_t i = 0; i < got.ids.size(); ++i)
          EXPECT_NEAR(got.weights[i], std::exp(double(l[got.ids[i]] - l[idx[0]]) / 0.7), 1e-12);
      }
}

TEST(Sampler, FrequencyPresencePenaltiesAndLogitBias) {
  std::vector<float> l = {2.0f, 1.0f, 0.5f};
  SamplerConfig g;
  g.temperature = 0;
  Generator gen(1);
  // frequency 0.4 x 3 occurrences of token 0: 2.0 - 1.2 = 0.8 < 1.0
  g.frequency_penalty = 0.4;
  EXPECT_EQ(sample_token(l.data(), 3, {0, 0, 0}, g, gen), 1);
  EXPECT_EQ(sample_token(l.data(), 3, {0, 0}, g, gen), 0);  // 2.0 - 0.8 = 1.2 > 1.0
  // presence counts once: 2.0 - 1.5 = 0.5 < 1.0 after a single occurrence
  g.frequency_penalty = 0;
  g.presence_penalty = 1.5;
  EXPECT_EQ(sample_token(l.data(), 3, {0}, g, gen), 1);
  // a negative presence penalty encourages a seen token
  g.presence_penalty = -2.0;
  EXPECT_EQ(sample_token(l.data(), 3, {2}, g, gen), 2);
  // logit bias: +100 forces a token, -100 bans one; ids past the vocabulary are ignored
  SamplerConfig b;
  b.temperature = 1.0;
  b.logit_bias = {{2, 100.0f}, {7, 5.0f}};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sample_token(l.data(), 3, {}, b, gen), 2);
  b.logit_bias = {{0, -100.0f}};
  for (int i = 0; i < 50; ++i) EXPECT_NE(sample_token(l.data(), 3, {}, b, gen), 0);
  b.logit_bias = {{-1, 1.0f}};
  EXPECT_THROW(b.validate(), ConfigError);
}

TEST(Sampler, RepetitionPenaltyAndValidation) {
  std::vector<float> l = {2.0f, 1.9f};
  SamplerConfig g;
  g.temperature = 0;
  g.repetition_penalty = 1.5;
  Generator gen(1);
  EXPECT_EQ(sample_token(l.data(), 2, {0}, g, gen), 1);  // 2.0 / 1.5 < 1.9
  SamplerConfig bad;
  bad.top_p = 0;
  EXPECT_THROW(bad.validate(), ConfigError);
  bad = SamplerConfig();
  bad.temperature = -1;
  EXPECT_THROW(bad.validate(), ConfigError);
}

TEST(Generate, BatchedEqualsOneByOneAndStateForks) {
  Transformer m(tiny(), 3);
  std::vector<std::vector<int64_t>> prompts = {{1, 2, 3, 4, 5}, {7, 8}, {9, 10, 11}};
  GenerateOptions o;
  o.sampler.temperature = 0;
  o.max_new_tokens = 8;
  auto batch = generate_batch(m, prompts, o);
  for (size_t i = 0; i < prompts.size(); ++i) {
    InferState st(m);
    auto one = generate(m, st, prompts[i], o);
    EXPECT_EQ(batch[i], one) << "row " << i;
  }
  // fork: two continuations of one prefix, each equal to a fresh run
  InferState base(m);
  generate(m, base, {4, 5, 6}, GenerateOptions{0, o.sampler, {}, -1, {}, {}});
  InferState a = base.fork(), b = base.fork();
  GenerateOptions o2 = o;
  o2.max_new_tokens = 4;
  auto ra = generate(m, a, {7}, o2);
  auto rb = generate(m, b, {8}, o2);
  InferState fa(m), fb(m);
  EXPECT_EQ(ra, generate(m, fa, {4, 5, 6, 7}, o2));
  EXPECT_EQ(rb, generate(m, fb, {4, 5, 6, 8}, o2));
  EXPECT_GT(a.bytes_per_token(), 0.0);
  // truncate then continue equals a fresh run over the shorter prefix
  a.truncate(2);
  InferState fc(m);
  EXPECT_EQ(generate(m, a, {9}, o2), generate(m, fc, {4, 5, 9}, o2));
}

// Continuous batching (Transformer::forward_rows) over every mixer kind, GQA, Qwen3's q/k norms,
// sliding windows, MLA with and without RoPE, and MoE: each row equals the row fed alone.
TEST(BatchedRows, EveryMixerKindMatchesRowsFedAlone) {
  std::vector<std::pair<std::string, TransformerConfig>> cases;
  cases.push_back({"llama gqa", tiny()});
  TransformerConfig q3 = tiny();
  q3.architecture = "Qwen3ForCausalLM";
  q3.head_dim = 16;
  cases.push_back({"qwen3 qk-norm", q3});
  TransformerConfig sw = tiny();
  sw.sliding_window = 3;
  cases.push_back({"sliding window 3", sw});
  TransformerConfig moe = tiny();
  moe.architecture = "Qwen3MoeForCausalLM";
  moe.num_experts = 4;
  moe.num_experts_per_tok = 2;
  moe.moe_intermediate_size = 16;
  cases.push_back({"qwen3-moe", moe});
  for (const char* pattern : {"AGDLSM", "KKKM"}) {
    TransformerConfig h = tiny();
    h.num_hidden_layers = int64_t(std::string(pattern).size());
    h.num_key_value_heads = 4;
    h.layer_pattern = pattern;
    h.sliding_window = 4;
    h.linear_num_heads = 2;
    h.linear_head_dim = 16;
    h.kv_lora_rank = 16;
    h.qk_nope_head_dim = 8;
    h.qk_rope_head_dim = std::string(pattern) == "KKKM" ? 0 : 4;  // Kimi's NoPE MLA, and MLA with RoPE
    h.v_head_dim = 8;
    cases.push_back({pattern, h});
  }
  for (const auto& [name, cfg] : cases) {
    SCOPED_TRACE(name);
    Transformer m(cfg, 5);
    test::expect_rows_match_alone(m, 1e-5);
  }
}

TEST(BatchedRows, DecodersFedTogetherMatchDecodersFedAlone) {
  Transformer m(tiny(), 3);
  SamplerConfig greedy;
  greedy.temperature = 0;
  std::vector<std::vector<int64_t>> prompts = {{1, 2, 3, 4, 5}, {7, 8}, {9, 10, 11}};
  std::vector<InferState> together, alone;
  for (size_t i = 0; i < prompts.size(); ++i) together.emplace_back(m), alone.emplace_back(m);
  std::vector<std::unique_ptr<Decoder>> dt, da;
  for (size_t i = 0; i < prompts.size(); ++i) {
    dt.push_back(std::make_unique<Decoder>(m, together[i], greedy));
    da.push_back(std::make_unique<Decoder>(m, alone[i], greedy));
    dt[i]->feed(prompts[i]);
    da[i]->feed(prompts[i]);
  }
  for (int step = 0; step < 6; ++step) {
    std::vector<Decoder*> decs;
    std::vector<int64_t> next;
    for (size_t i = 0; i < prompts.size(); ++i) {
      int64_t t = dt[i]->sample();
      EXPECT_EQ(t, da[i]->sample()) << "row " << i << " step " << step;
      da[i]->feed({t});
      decs.push_back(dt[i].get());
      next.push_back(t);
    }
    Decoder::feed_rows(decs, next);
  }
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i].tokens, alone[i].tokens);
  // Bad calls: a count mismatch, and a row past the context, name the problem.
  test::expect_error<ValueError>([&] { Decoder::feed_rows({dt[0].get()}, {1, 2}); }, "1 decoders for 2 tokens");
  InferState full(m);
  Decoder df(m, full, greedy);
  df.feed(std::vector<int64_t>(size_t(m.cfg.max_position_embeddings), 1));
  test::expect_error<ValueError>([&] { Decoder::feed_rows({dt[0].get(), &df}, {1, 1}); }, "row 1");
}

TEST(Generate, StreamingCallbackStopsAndContextLimit) {
  Transformer m(tiny(), 4);
  GenerateOptions o;
  o.sampler.temperature = 0;
  o.max_new_tokens = 20;
  int seen = 0;
  o.on_token = [&](int64_t) { return ++seen < 5; };
  InferState st(m);
  GenerateStats stats;
  auto out = generate(m, st, {1, 2}, o, &stats);
  EXPECT_EQ(out.size(), 5u);
  EXPECT_EQ(stats.stop_reason, "callback");
  InferState st2(m);
  std::vector<int64_t> longp(49, 3);
  EXPECT_THROW(generate(m, st2, longp, GenerateOptions{}), ValueError);
  GenerateOptions lim;
  lim.sampler.temperature = 0;
  lim.max_new_tokens = 100;
  InferState st3(m);
  auto r = generate(m, st3, std::vector<int64_t>(40, 2), lim, &stats);
  EXPECT_EQ(stats.stop_reason, "context");
  EXPECT_LE(st3.length(), 48);
  (void)r;
}

TEST(Generate, TextStopStringsAndStreamedPiecesAddUp) {
  std::vector<std::string> corpus = {"the cat sat on the mat. the dog sat on the log.", "stop here STOP and more"};
  TrainOptions to;
  to.vocab_size = 300;
  to.special_tokens = {"<|endoftext|>"};
  Tokenizer tok = Tokenizer::train(corpus, to);
  TransformerConfig c = tiny();
  c.vocab_size = tok.vocab_size();
  Transformer m(c, 5);
  GenerateOptions o;
  o.sampler.temperature = 1.0;
  o.sampler.seed = 3;
  o.max_new_tokens = 30;
  std::string streamed;
  auto r = generate_text(m, tok, "the cat", o, [&](const std::string& p) { streamed += p; });
  EXPECT_EQ(streamed, r.text);
  // stop string: cut where the text first contains it
  GenerateOptions os = o;
  os.stop = {"e", "at"};
  std::string streamed_s;
  auto rs = generate_text(m, tok, "the cat", os, [&](const std::string& p) { streamed_s += p; });
  EXPECT_EQ(rs.text.find('e'), std::string::npos);
  EXPECT_EQ(rs.text.find("at"), std::string::npos);
  EXPECT_EQ(streamed_s, rs.text);  // text that could start a stop string is held back, never streamed
}
