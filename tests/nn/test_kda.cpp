// The delta-rule mixers (KDA, GDN, DeltaNet, GLA): short convolution, composite gated linear attention
// against a step-by-step loop, parameter names and init ranges, prefill + decode == full forward,
// recurrent cache size and truncate rules, f64 gradient check of the whole KDA layer, NaN guard.
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"
#include "lmlab/autograd/gradcheck.h"
#include "lmlab/core/node.h"
#include "lmlab/nn/kda.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/join.h"

using namespace lmlab;
using lmlab::test::expect_error;

namespace {
DeltaAttentionConfig tiny(LinearMixer m) {
  DeltaAttentionConfig c;
  c.mixer = m;
  c.hidden = 16;
  c.n_heads = 2;
  c.head_dim = 8;
  c.conv_size = 4;
  c.chunk_size = 4;  // several chunks in short tests
  c.layer_index = 3;
  return c;
}
std::vector<std::string> names(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [n, t] : m.named_parameters()) out.push_back(n);
  return out;
}
bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}
const LinearMixer kAll[] = {LinearMixer::KDA, LinearMixer::GDN, LinearMixer::DeltaNet, LinearMixer::GLA};
}  // namespace

TEST(CausalConv1d, MatchesLoopAndContinuesFromTail) {
  Generator gen(1);
  int64_t B = 2, T = 7, C = 3, K = 4;
  Tensor x = Tensor::randn({B, T, C}, gen, DType::F64), w = Tensor::randn({C, 1, K}, gen, DType::F64);
  Tensor y = causal_conv1d(x, w);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double ref = 0;
        for (int64_t j = 0; j < K; ++j) {
          int64_t s = t - K + 1 + j;
          if (s >= 0) ref += w.at({c, 0, j}) * x.at({b, s, c});
        }
        EXPECT_NEAR(y.at({b, t, c}), ref, 1e-12);
      }
  // in two pieces: the tail carries the last K-1 inputs across the split
  Tensor tail;
  Tensor y1 = causal_conv1d(x.narrow(1, 0, 2), w, Tensor(), &tail);
  EXPECT_EQ(tail.shape(), Shape({B, K - 1, C}));
  Tensor y2 = causal_conv1d(x.narrow(1, 2, 5), w, tail);
  auto r = compare("conv split", concat({y1, y2}, 1), y, 1e-12, 1e-12);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(GatedLinearAttention, ChunkedCompositeMatchesStepLoop) {
  Generator gen(2);
  int64_t B = 1, T = 11, H = 2, Dk = 3, Dv = 4;
  Tensor q = Tensor::randn({B, T, H, Dk}, gen, DType::F64), k = Tensor::randn({B, T, H, Dk}, gen, DType::F64);
  Tensor v = Tensor::randn({B, T, H, Dv}, gen, DType::F64);
  Tensor g = neg(softplus(Tensor::randn({B, T, H, Dk}, gen, DType::F64)));
  Tensor s0 = Tensor::randn({B, H, Dk, Dv}, gen, DType::F64);
  double scale = 0.7;
  for (int64_t chunk : {1, 4, 16}) {
    GLAResult r = gated_linear_attention(q, k, v, g, s0, scale, chunk);
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> S(size_t(Dk * Dv));
      for (int64_t i = 0; i < Dk * Dv; ++i) S[size_t(i)] = s0.at({0, h, i / Dv, i % Dv});
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < Dk; ++i)
          for (int64_t j = 0; j < Dv; ++j)
            S[size_t(i * Dv + j)] = std::exp(g.at({0, t, h, i})) * S[size_t(i * Dv + j)] + k.at({0, t, h, i}) * v.at({0, t, h, j});
        for (int64_t j = 0; j < Dv; ++j) {
          double o = 0;
          for (int64_t i = 0; i < Dk; ++i) o += scale * q.at({0, t, h, i}) * S[size_t(i * Dv + j)];
          EXPECT_NEAR(r.o.at({0, t, h, j}), o, 1e-10) << "chunk " << chunk << " t " << t;
        }
      }
      for (int64_t i = 0; i < Dk * Dv; ++i)
        EXPECT_NEAR(r.final_state.at({0, h, i / Dv, i % Dv}), S[size_t(i)], 1e-10) << "chunk " << chunk;
    }
  }
  // a scalar gate per head broadcasts over the key channels
  Tensor gs = neg(softplus(Tensor::randn({B, T, H}, gen, DType::F64)));
  GLAResult a = gated_linear_attention(q, k, v, gs, s0, scale, 4);
  GLAResult b = gated_linear_attention(q, k, v, gs.unsqueeze(3).expand({B, T, H, Dk}).contiguous(), s0, scale, 4);
  auto r = compare("scalar gate", a.o, b.o, 1e-12, 1e-12);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(DeltaAttention, ParameterNamesShapesAndInit) {
  Generator gen(3);
  DeltaAttention kda(tiny(LinearMixer::KDA), gen, 0.02, 0.01);
  auto n = names(kda);
  for (const char* s : {"q_proj.weight", "k_proj.weight", "v_proj.weight", "q_conv1d.weight", "k_conv1d.weight",
                        "v_conv1d.weight", "A_log", "f_a_proj.weight", "f_b_proj.weight", "dt_bias", "b_proj.weight",
                        "g_a_proj.weight", "g_b_proj.weight", "o_norm.weight", "o_proj.weight"})
    EXPECT_TRUE(has(n, s)) << s;
  EXPECT_EQ(kda.q_conv1d->weight.shape(), Shape({16, 1, 4}));
  EXPECT_EQ(kda.A_log.shape(), Shape({1, 1, 2, 1}));
  EXPECT_EQ(kda.dt_bias.shape(), Shape({16}));
  EXPECT_EQ(kda.f_a_proj->weight.shape(), Shape({8, 16}));
  EXPECT_EQ(kda.f_b_proj->weight.shape(), Shape({16, 8}));
  EXPECT_EQ(kda.b_proj->weight.shape(), Shape({2, 16}));
  EXPECT_EQ(kda.o_norm->weight.shape(), Shape({8}));
  for (double a : kda.A_log.to_vector<double>()) {
    EXPECT_GE(a, 0.0);
    EXPECT_LE(a, std::log(16.0) + 1e-6);
  }
  // softplus(dt_bias) = dt in [1e-4 (clamp), 1e-1]
  for (double d : softplus(kda.dt_bias).to_vector<double>()) {
    EXPECT_GE(d, 1e-4 * 0.999);
    EXPECT_LE(d, 0.1 * 1.001);
  }
  for (double w : kda.q_conv1d->weight.to_vector<double>()) EXPECT_LE(std::abs(w), 0.5);

  DeltaAttention gdn(tiny(LinearMixer::GDN), gen, 0.02, 0.01);
  auto ng = names(gdn);
  EXPECT_TRUE(has(ng, "a_proj.weight"));
  EXPECT_FALSE(has(ng, "f_a_proj.weight"));
  EXPECT_EQ(gdn.A_log.shape(), Shape({2}));
  EXPECT_EQ(gdn.dt_bias.shape(), Shape({2}));
  DeltaAttention dn(tiny(LinearMixer::DeltaNet), gen, 0.02, 0.01);
  EXPECT_FALSE(has(names(dn), "A_log"));
  EXPECT_TRUE(has(names(dn), "b_proj.weight"));
  DeltaAttention gla(tiny(LinearMixer::GLA), gen, 0.02, 0.01);
  EXPECT_FALSE(has(names(gla), "b_proj.weight"));
  EXPECT_TRUE(has(names(gla), "f_b_proj.weight"));
  // gates: log-space, <= 0; channel-wise for KDA, per head for GDN
  Tensor x = Tensor::randn({2, 5, 16}, gen);
  Tensor gk = kda.gate(x), gg = gdn.gate(x);
  EXPECT_EQ(gk.shape(), Shape({2, 5, 2, 8}));
  EXPECT_EQ(gg.shape(), Shape({2, 5, 2}));
  for (double v : gk.to_vector<double>()) EXPECT_LE(v, 0.0);
  EXPECT_FALSE(dn.gate(x).defined());
  EXPECT_EQ(kda.forward(x).shape(), Shape({2, 5, 16}));
}

TEST(DeltaAttention, PrefillThenDecodeEqualsFullForward) {
  for (LinearMixer m : kAll) {
    Generator gen(4);
    DeltaAttention layer(tiny(m), gen, 0.3, 0.3);  // large init: the state matters for the output
    NoGrad ng;
    Tensor x = Tensor::randn({2, 13, 16}, gen);
    Tensor full = layer.forward(x);
    RecurrentCache cache;
    std::vector<Tensor> parts;
    parts.push_back(layer.forward(x.narrow(1, 0, 6), &cache));  // prefill
    for (int64_t t = 6; t < 9; ++t) parts.push_back(layer.forward(x.narrow(1, t, 1), &cache));  // decode
    parts.push_back(layer.forward(x.narrow(1, 9, 4), &cache));  // another chunk
    auto r = compare(std::string("cached ") + linear_mixer_name(m), concat(parts, 1), full, 1e-5, 1e-4);
    EXPECT_TRUE(r.ok) << r.message;
    EXPECT_EQ(cache.length(), 13);
    EXPECT_EQ(cache.kind, linear_mixer_name(m));
  }
}

TEST(DeltaAttention, LeftPaddingLeavesTheStateUntouched) {
  Generator gen(5);
  DeltaAttention layer(tiny(LinearMixer::KDA), gen, 0.3, 0.3);
  NoGrad ng;
  Tensor x = Tensor::randn({1, 6, 16}, gen);
  Tensor padded = concat({Tensor::randn({1, 3, 16}, gen), x}, 1);  // 3 garbage tokens first
  Tensor valid = Tensor::from_vector(std::vector<float>{0, 0, 0, 1, 1, 1, 1, 1, 1}, {1, 9});
  RecurrentCache a, b;
  Tensor ya = layer.forward(x, &a);
  Tensor yb = layer.forward(padded, &b, valid).narrow(1, 3, 6);
  auto r = compare("left padding", yb, ya, 1e-5, 1e-4);
  EXPECT_TRUE(r.ok) << r.message;
  auto rs = compare("state", b.state, a.state, 1e-6, 1e-5);
  EXPECT_TRUE(rs.ok) << rs.message;
}

TEST(RecurrentCache, SizeIsConstantAndTruncateCannotRewind) {
  Generator gen(6);
  DeltaAttention layer(tiny(LinearMixer::KDA), gen, 0.02, 0.02);
  NoGrad ng;
  RecurrentCache c;
  layer.forward(Tensor::randn({1, 5, 16}, gen), &c);
  // state [1, 2, 8, 8] + 3 conv tails [1, 3, 16], f32
  size_t expect = size_t(2 * 8 * 8 + 3 * 3 * 16) * 4;
  EXPECT_EQ(c.bytes(), expect);
  layer.forward(Tensor::randn({1, 7, 16}, gen), &c);
  EXPECT_EQ(c.bytes(), expect);
  EXPECT_EQ(c.length(), 12);
  auto copy = c.clone();
  layer.forward(Tensor::randn({1, 1, 16}, gen), &c);
  EXPECT_EQ(copy->length(), 12);  // deep copy, not shared
  c.truncate(13);                 // no-op
  expect_error<ValueError>([&] { c.truncate(4); }, "kda");
  c.truncate(0);
  EXPECT_EQ(c.length(), 0);
  EXPECT_EQ(c.bytes(), 0u);
}

TEST(DeltaAttention, GradcheckF64WholeLayer) {
  for (LinearMixer m : {LinearMixer::KDA, LinearMixer::GLA}) {
    Generator gen(7);
    DeltaAttentionConfig c = tiny(m);
    c.hidden = 6;
    c.n_heads = 2;
    c.head_dim = 3;
    c.conv_size = 3;
    c.chunk_size = 2;
    DeltaAttention layer(c, gen, 0.5, 0.5);
    // Every parameter becomes a gradcheck input: the layer reads its public tensors at forward time.
    std::vector<Tensor*> slots;
    for (auto* l : {&layer.q_proj, &layer.k_proj, &layer.v_proj, &layer.f_a_proj, &layer.f_b_proj, &layer.b_proj,
                    &layer.g_a_proj, &layer.g_b_proj, &layer.o_proj})
      if (*l) slots.push_back(&(*l)->weight);
    for (auto* cv : {&layer.q_conv1d, &layer.k_conv1d, &layer.v_conv1d}) slots.push_back(&(*cv)->weight);
    slots.push_back(&layer.A_log);
    slots.push_back(&layer.dt_bias);
    slots.push_back(&layer.o_norm->weight);
    std::vector<Tensor> inputs = {Tensor::randn({1, 5, 6}, gen, DType::F64)};
    for (Tensor* s : slots) inputs.push_back(s->to(DType::F64));
    auto f = [&](const std::vector<Tensor>& in) {
      for (size_t i = 0; i < slots.size(); ++i) *slots[i] = in[i + 1];
      return layer.forward(in[0]);
    };
    GradcheckOptions o;
    o.max_elems = 12;
    o.atol = 1e-7;
    o.rtol = 1e-5;
    auto r = gradcheck(f, inputs, o);
    EXPECT_TRUE(r.ok) << linear_mixer_name(m) << ": " << r.message;
  }
}

TEST(DeltaAttention, NonFiniteStateInTrainingNamesTheLayer) {
  Generator gen(8);
  DeltaAttention layer(tiny(LinearMixer::KDA), gen, 0.02, 0.02);
  Tensor x = Tensor::randn({1, 4, 16}, gen);
  x.data<float>()[5] = NAN;
  layer.train(true);
  try {
    layer.forward(x);
    ADD_FAILURE() << "expected NonFiniteStateError";
  } catch (const NonFiniteStateError& e) {
    EXPECT_EQ(e.layer, 3);
    EXPECT_NE(std::string(e.what()).find("layer 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("kda"), std::string::npos) << e.what();
  }
  // inference does not pay for the check
  NoGrad ng;
  EXPECT_NO_THROW(layer.forward(x));
}

TEST(DeltaAttention, ConfigErrorsNameTheField) {
  Generator gen(9);
  DeltaAttentionConfig c = tiny(LinearMixer::KDA);
  c.n_heads = 0;
  expect_error<ConfigError>([&] { DeltaAttention l(c, gen, 0.02, 0.02); }, "num_heads");
  c = tiny(LinearMixer::KDA);
  c.conv_size = -1;
  expect_error<ConfigError>([&] { DeltaAttention l(c, gen, 0.02, 0.02); }, "short_conv_kernel_size");
}
