// Delta-rule / gated linear-attention mixers (KDA, GDN, DeltaNet, GLA), the short convolution and the
// composite chunked gated linear attention. References: fla/layers/kda.py, fla/ops/kda/gate.py,
// Kimi-Linear tech report Sec. 4 (init of A_log and dt_bias).
#include "lmlab/nn/kda.h"

#include <cmath>

#include "lmlab/core/node.h"
#include "lmlab/ops/delta_rule/delta_rule.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/join.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/norm.h"
#include "lmlab/ops/reduce.h"
#include "lmlab/ops/scan.h"

namespace lmlab {

const char* linear_mixer_name(LinearMixer m) {
  switch (m) {
    case LinearMixer::KDA: return "kda";
    case LinearMixer::GDN: return "gdn";
    case LinearMixer::DeltaNet: return "deltanet";
    case LinearMixer::GLA: return "gla";
  }
  return "?";
}

void DeltaAttentionConfig::validate() const {
  auto pos = [](int64_t v, const char* f) {
    LMLAB_CHECK(v > 0, ConfigError, "[delta_attention] ", f, " must be positive, got ", v);
  };
  pos(hidden, "hidden");
  pos(n_heads, "num_heads");
  pos(head_dim, "head_dim");
  pos(chunk_size, "chunk_size");
  LMLAB_CHECK(conv_size >= 0, ConfigError, "[delta_attention] short_conv_kernel_size must be >= 0, got ", conv_size);
  LMLAB_CHECK(norm_eps > 0, ConfigError, "[delta_attention] norm eps must be positive, got ", norm_eps);
}

Tensor causal_conv1d(const Tensor& x, const Tensor& weight, const Tensor& tail, Tensor* new_tail) {
  LMLAB_CHECK(x.dim() == 3, ShapeError, "[causal_conv1d] x must be [B, T, C], got ", shape_str(x.shape()));
  int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  LMLAB_CHECK(weight.dim() == 3 && weight.size(0) == C && weight.size(1) == 1, ShapeError,
              "[causal_conv1d] weight must be [C, 1, K] with C = ", C, ", got ", shape_str(weight.shape()));
  int64_t K = weight.size(2);
  LMLAB_CHECK(!tail.defined() || (tail.dim() == 3 && tail.size(0) == B && tail.size(1) == K - 1 && tail.size(2) == C),
              ShapeError, "[causal_conv1d] tail must be [", B, ", ", K - 1, ", ", C, "], got ", shape_str(tail.shape()));
  Tensor xe = x;  // [B, K-1+T, C]: the K-1 inputs before x, then x
  if (K > 1) xe = concat({tail.defined() ? tail.to(x.dtype()) : Tensor::zeros({B, K - 1, C}, x.dtype()), x}, 1);
  Tensor w = weight.select(1, 0);  // [C, K]
  Tensor y;
  for (int64_t j = 0; j < K; ++j) {
    Tensor term = mul(xe.narrow(1, j, T), w.select(1, j));  // [B, T, C] * [C]
    y = y.defined() ? add(y, term) : term;
  }
  if (new_tail) {
    NoGrad ng;
    *new_tail = K > 1 ? xe.narrow(1, T, K - 1).detach().contiguous() : Tensor();
  }
  return y;
}

GLAResult gated_linear_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                 const Tensor& initial_state, double scale, int64_t chunk) {
  LMLAB_CHECK(q.dim() == 4 && k.shape() == q.shape(), ShapeError, "[gla] q and k must be [B, T, H, dk], got ",
              shape_str(q.shape()), " and ", shape_str(k.shape()));
  int64_t B = q.size(0), T = q.size(1), H = q.size(2), Dk = q.size(3);
  LMLAB_CHECK(v.dim() == 4 && v.size(0) == B && v.size(1) == T && v.size(2) == H, ShapeError,
              "[gla] v must be [B, T, H, dv] matching q, got ", shape_str(v.shape()));
  int64_t Dv = v.size(3);
  LMLAB_CHECK(g.defined() && ((g.dim() == 4 && g.shape() == q.shape()) ||
                              (g.dim() == 3 && g.size(0) == B && g.size(1) == T && g.size(2) == H)),
              ShapeError, "[gla] g must be [B, T, H, dk] or [B, T, H], got ",
              g.defined() ? shape_str(g.shape()) : std::string("undefined"));
  LMLAB_CHECK(!initial_state.defined() || initial_state.shape() == Shape({B, H, Dk, Dv}), ShapeError,
              "[gla] initial_state must be [", B, ", ", H, ", ", Dk, ", ", Dv, "], got ",
              shape_str(initial_state.shape()));
  LMLAB_CHECK(chunk > 0, ValueError, "[gla] chunk must be positive, got ", chunk);
  if (scale == 0.0) scale = 1.0 / std::sqrt(double(Dk));
  DType dt = q.dtype();
  Tensor gg = g.dim() == 3 ? g.unsqueeze(3).expand({B, T, H, Dk}) : g;
  int64_t C = std::min<int64_t>(chunk, T), N = (T + C - 1) / C, Tp = N * C;
  // [B, T, H, d] -> [B, H, Tp, d], zero-padded (g = 0 and k = 0 leave the state unchanged)
  auto prep = [&](const Tensor& t, double s) {
    Tensor x = t.transpose(1, 2);
    if (s != 1.0) x = mul(x, s);
    if (Tp > T) x = concat({x, Tensor::zeros({B, H, Tp - T, x.size(3)}, dt)}, 2);
    return x.reshape({B, H, N, C, x.size(3)});  // [B, H, N, C, d]
  };
  Tensor qc = prep(q, scale), kc = prep(k, 1.0), vc = prep(v, 1.0), gc = prep(gg, 1.0);
  Tensor G = cumsum(gc, 3);  // [B, H, N, C, dk] inclusive log-decay within the chunk
  // Intra-chunk scores A[r, j] = sum_c q_r[c] k_j[c] exp(G_r[c] - G_j[c]), j <= r.
  Tensor upper = triu(Tensor::ones({C, C}, DType::U8), 1).unsqueeze(2);                // [C, C, 1]: j > r
  Tensor diff = masked_fill(sub(G.unsqueeze(4), G.unsqueeze(3)), upper, -INFINITY);    // [B, H, N, C, C, dk]
  Tensor A = sum(mul(mul(qc.unsqueeze(4), kc.unsqueeze(3)), exp(diff)), {5});          // [B, H, N, C, C]
  Tensor o_intra = matmul(A, vc);                                                       // [B, H, N, C, dv]
  Tensor S = initial_state.defined() ? initial_state.to(dt) : Tensor::zeros({B, H, Dk, Dv}, dt);
  std::vector<Tensor> outs;
  for (int64_t n = 0; n < N; ++n) {
    Tensor Gn = G.select(2, n), qn = qc.select(2, n), kn = kc.select(2, n), vn = vc.select(2, n);  // [B, H, C, d]
    Tensor Glast = Gn.narrow(2, C - 1, 1);                                                        // [B, H, 1, dk]
    outs.push_back(add(o_intra.select(2, n), matmul(mul(qn, exp(Gn)), S)));                      // [B, H, C, dv]
    Tensor kd = mul(kn, exp(sub(Glast, Gn)));                                                     // [B, H, C, dk]
    S = add(mul(S, exp(Glast).transpose(2, 3)), matmul(kd.transpose(2, 3), vn));                // [B, H, dk, dv]
  }
  Tensor o = concat(outs, 2).narrow(2, 0, T).transpose(1, 2);  // [B, T, H, dv]
  return {o, S};
}

namespace {
// Up to this many new tokens with a cache and no gradients, KDA / GDN / DeltaNet run the decode step
// kernel (gated_delta_rule_step) instead of the differentiable recurrence.
constexpr int64_t kDecodeStepMaxT = 16;
// U(lo, hi) values of `shape` (f32), or uninitialised under SkipInit.
Tensor uniform(const Shape& shape, Generator& gen, double lo, double hi) {
  Tensor t = Tensor::empty(shape);
  if (SkipInit::active()) return t;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(lo + (hi - lo) * gen.uniform());
  return t;
}
// dt ~ exp(U(log 1e-3, log 1e-1)) clamped >= 1e-4, stored as inverse softplus: dt + log(-expm1(-dt))
// (Mamba / fla init), so softplus(dt_bias) starts at dt.
Tensor dt_bias_init(int64_t n, Generator& gen) {
  Tensor t = Tensor::empty({n});
  if (SkipInit::active()) return t;
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    double dt = std::exp(std::log(1e-3) + (std::log(1e-1) - std::log(1e-3)) * gen.uniform());
    dt = std::max(dt, 1e-4);
    p[i] = float(dt + std::log(-std::expm1(-dt)));
  }
  return t;
}
Tensor l2norm(const Tensor& x) {  // over the last dim, fla's l2norm (eps 1e-6 inside the root)
  return mul(x, rsqrt(add(sum(mul(x, x), {x.dim() - 1}, true), 1e-6)));
}
bool all_finite(const Tensor& t) {
  for (double v : t.detach().to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}
}  // namespace

ShortConvolution::ShortConvolution(int64_t channels, int64_t kernel, Generator& gen) {
  // torch Conv1d default (kaiming uniform, a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = K.
  double b = 1.0 / std::sqrt(double(kernel));
  weight = register_parameter("weight", uniform({channels, 1, kernel}, gen, -b, b));
}

DeltaAttention::DeltaAttention(const DeltaAttentionConfig& c, Generator& gen, double std, double out_std) : cfg(c) {
  c.validate();
  int64_t C = c.hidden, H = c.n_heads, D = c.head_dim, P = H * D;
  q_proj = register_module("q_proj", std::make_shared<Linear>(C, P, false, gen, std));
  k_proj = register_module("k_proj", std::make_shared<Linear>(C, P, false, gen, std));
  v_proj = register_module("v_proj", std::make_shared<Linear>(C, P, false, gen, std));
  if (c.conv_size > 0) {
    q_conv1d = register_module("q_conv1d", std::make_shared<ShortConvolution>(P, c.conv_size, gen));
    k_conv1d = register_module("k_conv1d", std::make_shared<ShortConvolution>(P, c.conv_size, gen));
    v_conv1d = register_module("v_conv1d", std::make_shared<ShortConvolution>(P, c.conv_size, gen));
  }
  // A = U(1, 16) per head: decay rates exp(A) * softplus(.) spread over heads (Kimi report Sec. 4).
  if (c.mixer == LinearMixer::KDA || c.mixer == LinearMixer::GLA) {
    A_log = register_parameter("A_log", log(uniform({1, 1, H, 1}, gen, 1.0, 16.0)));
    f_a_proj = register_module("f_a_proj", std::make_shared<Linear>(C, D, false, gen, std));
    f_b_proj = register_module("f_b_proj", std::make_shared<Linear>(D, P, false, gen, std));
    dt_bias = register_parameter("dt_bias", dt_bias_init(P, gen));
  } else if (c.mixer == LinearMixer::GDN) {
    A_log = register_parameter("A_log", log(uniform({H}, gen, 1.0, 16.0)));
    a_proj = register_module("a_proj", std::make_shared<Linear>(C, H, false, gen, std));
    dt_bias = register_parameter("dt_bias", dt_bias_init(H, gen));
  }
  if (c.mixer != LinearMixer::GLA) b_proj = register_module("b_proj", std::make_shared<Linear>(C, H, false, gen, std));
  g_a_proj = register_module("g_a_proj", std::make_shared<Linear>(C, D, false, gen, std));
  g_b_proj = register_module("g_b_proj", std::make_shared<Linear>(D, P, false, gen, std));
  o_norm = register_module("o_norm", std::make_shared<RMSNorm>(D, c.norm_eps));
  o_proj = register_module("o_proj", std::make_shared<Linear>(P, C, false, gen, out_std));
}

Tensor DeltaAttention::gate(const Tensor& x) const {
  int64_t B = x.size(0), T = x.size(1), H = cfg.n_heads, D = cfg.head_dim;
  switch (cfg.mixer) {
    case LinearMixer::KDA:
    case LinearMixer::GLA: {
      Tensor f = f_b_proj->forward(f_a_proj->forward(x));                       // [B, T, H * dk]
      Tensor sp = softplus(add(f, dt_bias)).view({B, T, H, D});                 // [B, T, H, dk]
      return neg(mul(exp(A_log), sp));                                          // [B, T, H, dk], <= 0
    }
    case LinearMixer::GDN:
      return neg(mul(exp(A_log), softplus(add(a_proj->forward(x), dt_bias))));  // [B, T, H]
    case LinearMixer::DeltaNet: return Tensor();
  }
  return Tensor();
}

Tensor DeltaAttention::forward(const Tensor& x_in, RecurrentCache* cache, const Tensor& valid) const {
  LMLAB_CHECK(x_in.dim() == 3 && x_in.size(2) == cfg.hidden, ShapeError, "[", linear_mixer_name(cfg.mixer),
              "] input must be [B, T, ", cfg.hidden, "], got ", shape_str(x_in.shape()));
  int64_t B = x_in.size(0), T = x_in.size(1), H = cfg.n_heads, D = cfg.head_dim;
  Tensor x = x_in;
  if (valid.defined()) x = mul(x, valid.to(x.dtype()).reshape({B, T, 1}));  // [B, T, C], padding zeroed
  if (cache && cache->len > 0 && cache->state.defined())
    LMLAB_CHECK(cache->state.size(0) == B, ShapeError, "[", linear_mixer_name(cfg.mixer), "_cache] batch changed from ",
                cache->state.size(0), " to ", B);
  auto conv = [&](const std::shared_ptr<ShortConvolution>& m, const Tensor& p, Tensor* tail) {
    if (!m) return silu(p);
    if (!cache) return silu(m->forward(p));
    Tensor nt;
    Tensor y = silu(m->forward(p, *tail, &nt));
    *tail = nt;
    return y;
  };
  Tensor tq, tk, tv;  // updated tails, committed with the state below
  if (cache) tq = cache->conv_q, tk = cache->conv_k, tv = cache->conv_v;
  Tensor q = l2norm(conv(q_conv1d, q_proj->forward(x), &tq).view({B, T, H, D}));  // [B, T, H, dk]
  Tensor k = l2norm(conv(k_conv1d, k_proj->forward(x), &tk).view({B, T, H, D}));  // [B, T, H, dk]
  Tensor v = conv(v_conv1d, v_proj->forward(x), &tv).view({B, T, H, D});          // [B, T, H, dv]
  Tensor g = gate(x);                                                             // [B, T, H, dk] | [B, T, H] | -
  Tensor init = cache ? cache->state : Tensor();
  Tensor o, state;
  if (cfg.mixer == LinearMixer::GLA) {
    GLAResult r = gated_linear_attention(q, k, v, g, init);
    o = r.o, state = r.final_state;
  } else {
    Tensor beta = sigmoid(b_proj->forward(x));  // [B, T, H]
    DeltaRuleOptions opt;
    opt.chunk_size = cfg.chunk_size;
    // Decoding (a cache, no gradients, a few tokens): the per-token kernel updates the cached state in
    // place (a forked cache clones its layers before writing, cache.h).
    const bool decode = cache && !GradMode::enabled() && T <= kDecodeStepMaxT &&
                        (!init.defined() || (init.dtype() == q.dtype() && init.is_contiguous()));
    DeltaRuleResult r = decode ? gated_delta_rule_step(q, k, v, g, beta, init, opt)
                               : gated_delta_rule(q, k, v, g, beta, init, opt);
    o = r.o, state = r.final_state;  // [B, T, H, dv], [B, H, dk, dv]
  }
  if (GradMode::enabled() && training() && !all_finite(state))
    throw NonFiniteStateError(str_cat("[", linear_mixer_name(cfg.mixer), "] layer ", cfg.layer_index,
                                      ": NaN or Inf in the recurrent state after a forward of ", T,
                                      " tokens (lower the learning rate, check the gates and inputs)"),
                              cfg.layer_index);
  if (cache) {
    NoGrad ng;
    cache->kind = linear_mixer_name(cfg.mixer);
    cache->state = state.detach();
    cache->conv_q = tq, cache->conv_k = tk, cache->conv_v = tv;
    cache->len += T;
  }
  Tensor og = sigmoid(g_b_proj->forward(g_a_proj->forward(x)).view({B, T, H, D}));  // [B, T, H, dv]
  Tensor y = mul(o_norm->forward(o), og).reshape({B, T, H * D});                    // [B, T, H * dv]
  return o_proj->forward(y);                                                        // [B, T, C]
}

Tensor DeltaAttention::forward_rows(const Tensor& x, const std::vector<RecurrentCache*>& rows) const {
  LMLAB_CHECK(x.dim() == 3 && int64_t(rows.size()) == x.size(0), ShapeError, "[", linear_mixer_name(cfg.mixer), "] ",
              rows.size(), " row caches for input ", shape_str(x.shape()));
  NoGrad ng;
  const int64_t B = x.size(0), T = x.size(1);
  // Stacks one field over the rows; a row that has none yet (an empty cache) contributes zeros shaped
  // like the others'. Undefined when no row has it.
  auto stack = [&](Tensor RecurrentCache::*field) {
    const Tensor* like = nullptr;
    for (const RecurrentCache* r : rows)
      if ((r->*field).defined()) like = &(r->*field);
    if (!like) return Tensor();
    std::vector<Tensor> parts;
    for (const RecurrentCache* r : rows)
      parts.push_back((r->*field).defined() ? r->*field : Tensor::zeros(like->shape(), like->dtype()));
    return B == 1 ? parts[0] : concat(parts, 0);
  };
  RecurrentCache all;
  all.state = stack(&RecurrentCache::state);
  all.conv_q = stack(&RecurrentCache::conv_q);
  all.conv_k = stack(&RecurrentCache::conv_k);
  all.conv_v = stack(&RecurrentCache::conv_v);
  all.len = all.state.defined() ? 1 : 0;  // only "is there a state" matters to forward
  Tensor y = forward(x, &all);
  for (int64_t b = 0; b < B; ++b) {
    RecurrentCache& r = *rows[size_t(b)];
    auto slice = [&](const Tensor& t) { return t.defined() ? t.narrow(0, b, 1) : t; };
    r.kind = all.kind;
    r.state = slice(all.state);
    r.conv_q = slice(all.conv_q);
    r.conv_k = slice(all.conv_k);
    r.conv_v = slice(all.conv_v);
    r.len += T;
  }
  return y;
}

}  // namespace lmlab
