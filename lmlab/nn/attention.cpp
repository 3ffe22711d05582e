// Self-attention and SwiGLU MLP modules.
#include "lmlab/nn/attention.h"

#include "lmlab/core/node.h"
#include "lmlab/nn/rows.h"
#include "lmlab/ops/attention.h"
#include "lmlab/ops/elementwise.h"
#include "lmlab/ops/matmul.h"
#include "lmlab/ops/swiglu.h"

namespace lmlab {

namespace {
// One [sum(rows), in] buffer, each block drawn N(0, std^2) in order (the same values separate
// Linears would draw from `gen`).
Tensor fused_rows(int64_t in, const std::vector<int64_t>& rows, Generator& gen, double std) {
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  Tensor w = Tensor::empty({total, in});
  if (SkipInit::active()) return w;  // values are about to be loaded
  int64_t at = 0;
  for (int64_t r : rows) {
    Tensor part = Tensor::randn({r, in}, gen);
    mul_(part, std);
    copy_(w.narrow(0, at, r), part);
    at += r;
  }
  return w;
}
}  // namespace

SelfAttention::SelfAttention(const AttentionConfig& c, Generator& gen, double std, double out_std) : cfg(c) {
  LMLAB_CHECK(c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, ConfigError,
              "[attention] num_attention_heads (", c.n_heads, ") must be a positive multiple of num_key_value_heads (",
              c.n_kv_heads, ")");
  int64_t nq = c.n_heads * c.head_dim, nkv = c.n_kv_heads * c.head_dim;
  qkv_weight_ = fused_rows(c.hidden, {nq, nkv, nkv}, gen, std);
  if (c.qkv_bias) qkv_bias_ = Tensor::zeros({nq + 2 * nkv});
  auto part = [&](int64_t start, int64_t n) {
    Tensor b = c.qkv_bias ? qkv_bias_.narrow(0, start, n).detach() : Tensor();
    return std::make_shared<Linear>(qkv_weight_.narrow(0, start, n).detach(), b);
  };
  q_proj = register_module("q_proj", part(0, nq));
  k_proj = register_module("k_proj", part(nq, nkv));
  v_proj = register_module("v_proj", part(nq + nkv, nkv));
  o_proj = register_module("o_proj", std::make_shared<Linear>(c.n_heads * c.head_dim, c.hidden, c.o_bias, gen, out_std));
  if (c.qk_norm) {
    q_norm = register_module("q_norm", std::make_shared<RMSNorm>(c.head_dim, c.qk_norm_eps));
    k_norm = register_module("k_norm", std::make_shared<RMSNorm>(c.head_dim, c.qk_norm_eps));
  }
}

SelfAttention::Projected SelfAttention::project(const Tensor& x, int64_t pos_offset, const Tensor& positions) const {
  int64_t B = x.size(0), T = x.size(1), H = cfg.n_heads, Hkv = cfg.n_kv_heads, D = cfg.head_dim;
  Tensor q, k, v;
  if (!GradMode::enabled() && (qkv_q_ || !q_proj->quantized())) {
    // Inference: one product over the fused q/k/v rows, then views of its column blocks.
    Tensor qkv = qkv_q_ ? qlinear(x, *qkv_q_, qkv_bias_) : linear(x, qkv_weight_, qkv_bias_);  // [B, T, (H + 2 Hkv) D]
    q = qkv.narrow(2, 0, H * D).reshape({B, T, H, D});                           // [B, T, H, D]
    k = qkv.narrow(2, H * D, Hkv * D).reshape({B, T, Hkv, D});                   // [B, T, Hkv, D]
    v = qkv.narrow(2, (H + Hkv) * D, Hkv * D).reshape({B, T, Hkv, D});           // [B, T, Hkv, D]
  } else {
    q = q_proj->forward(x).view({B, T, H, D});    // [B, T, H, D]
    k = k_proj->forward(x).view({B, T, Hkv, D});  // [B, T, Hkv, D]
    v = v_proj->forward(x).view({B, T, Hkv, D});  // [B, T, Hkv, D]
  }
  if (q_norm) {
    q = q_norm->forward(q);  // [B, T, H, D], normalised over D per head
    k = k_norm->forward(k);  // [B, T, Hkv, D]
  }
  if (positions.defined()) {
    q = rope(q, cfg.rope, positions).transpose(1, 2);  // [B, H, T, D]
    k = rope(k, cfg.rope, positions).transpose(1, 2);  // [B, Hkv, T, D]
  } else {
    q = rope(q, cfg.rope, pos_offset).transpose(1, 2);  // [B, H, T, D]
    k = rope(k, cfg.rope, pos_offset).transpose(1, 2);  // [B, Hkv, T, D]
  }
  return {q, k, v.transpose(1, 2)};                     // v [B, Hkv, T, D]
}

Tensor SelfAttention::attend(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask) const {
  AttentionOptions opt;
  opt.causal = true;
  opt.window = cfg.window;
  opt.mask = mask;
  return attention(q, k, v, opt);  // [B, H, T, D]
}

Tensor SelfAttention::output(const Tensor& y) const {
  int64_t B = y.size(0), T = y.size(2);
  return o_proj->forward(y.transpose(1, 2).reshape({B, T, cfg.n_heads * cfg.head_dim}));  // [B, T, C]
}

Tensor SelfAttention::forward(const Tensor& x, int64_t pos_offset, KVCache* cache, const Tensor& positions,
                              const Tensor& mask) const {
  auto [q, k, v] = project(x, pos_offset, positions);
  if (cache) std::tie(k, v) = cache->append(k, v);  // [B, Hkv, S, D], S = cached + T
  return output(attend(q, k, v, mask));
}

Tensor SelfAttention::forward_rows(const Tensor& x, const Tensor& positions, const std::vector<KVCache*>& rows) const {
  LMLAB_CHECK(int64_t(rows.size()) == x.size(0), ShapeError, "[attention] ", rows.size(), " row caches for a batch of ",
              x.size(0));
  Projected p = project(x, 0, positions);
  return output(concat_rows(x.size(0), [&](int64_t b) {
    auto kv = rows[size_t(b)]->append(p.k.narrow(0, b, 1), p.v.narrow(0, b, 1));  // [1, Hkv, S_b, D] each
    return attend(p.q.narrow(0, b, 1), kv.first, kv.second, Tensor());           // [1, H, T, D]
  }));  // [B, T, C]
}

namespace {
// The stacked quantized rows of `parts` when all are quantized with one type; null otherwise.
std::shared_ptr<const QMatrix> stack_quantized(const std::vector<const Linear*>& parts) {
  std::vector<const QMatrix*> q;
  for (const Linear* l : parts) {
    if (!l->quantized() || l->qweight->type != parts[0]->qweight->type) return nullptr;
    q.push_back(l->qweight.get());
  }
  return std::make_shared<const QMatrix>(QMatrix::concat_rows(q).interleaved());
}
// The parts of a stack (when there is none) and the rest go into the decoding layout.
void interleave_all(const std::vector<Linear*>& parts, bool stacked, Linear* rest) {
  if (!stacked)
    for (Linear* l : parts) l->interleave_quantized();
  rest->interleave_quantized();
}
}  // namespace

void SelfAttention::fuse_quantized() {
  if (q_proj->quantized() && k_proj->quantized() && v_proj->quantized()) {
    qkv_q_ = stack_quantized({q_proj.get(), k_proj.get(), v_proj.get()});
    qkv_weight_ = Tensor();  // no Linear views it any more
  }
  interleave_all({q_proj.get(), k_proj.get(), v_proj.get()}, qkv_q_ != nullptr, o_proj.get());
}

void SwiGLUMLP::fuse_quantized() {
  if (gate_proj->quantized() && up_proj->quantized()) {
    gate_up_q_ = stack_quantized({gate_proj.get(), up_proj.get()});
    gate_up_weight_ = Tensor();
  }
  interleave_all({gate_proj.get(), up_proj.get()}, gate_up_q_ != nullptr, down_proj.get());
}

SwiGLUMLP::SwiGLUMLP(int64_t hidden, int64_t inter, Generator& gen, double std, double out_std, const char* gate_name,
                     const char* up_name, const char* down_name)
    : inter_(inter) {
  gate_up_weight_ = fused_rows(hidden, {inter, inter}, gen, std);
  gate_proj = register_module(gate_name, std::make_shared<Linear>(gate_up_weight_.narrow(0, 0, inter).detach(), Tensor()));
  up_proj = register_module(up_name, std::make_shared<Linear>(gate_up_weight_.narrow(0, inter, inter).detach(), Tensor()));
  down_proj = register_module(down_name, std::make_shared<Linear>(inter, hidden, false, gen, out_std));
}

Tensor SwiGLUMLP::forward(const Tensor& x) const {
  if (!GradMode::enabled() && (gate_up_q_ || !gate_proj->quantized())) {
    Tensor gu = gate_up_q_ ? qlinear(x, *gate_up_q_) : linear(x, gate_up_weight_);  // [..., 2I]: one product
    return down_proj->forward(swiglu(gu.narrow(-1, 0, inter_), gu.narrow(-1, inter_, inter_)));
  }
  return down_proj->forward(swiglu(gate_proj->forward(x), up_proj->forward(x)));
}

}  // namespace lmlab
