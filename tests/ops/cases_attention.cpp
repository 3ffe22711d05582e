// Op-table cases for fused attention (ops/attention.h): causal and bidirectional, T != S (decode),
// sliding window, GQA, broadcast additive masks (with and without a mask gradient), a transposed
// (non-contiguous) q, rows that see no key, and tiled shapes larger than / not a multiple of the
// tile sizes (default 64 and shrunk with ScopedAttentionBlocks) so the fast path's tile loops run.
#include <limits>

#include "lmlab/ops/cpu/attention_kernels.h"
#include "tests/ops/op_table.h"

namespace lmlab::test {
namespace {

enum class Mask { None, TS, B1TS, DeadRow };

struct Spec {
  int64_t B, Hq, Hkv, T, S, D, Dv;
  bool causal = false;
  int64_t window = 0;
  Mask mask = Mask::None;
  bool mask_grad = false;
  bool q_transposed = false;  // q built as [B, T, Hq, D] and transposed to [B, Hq, T, D]
  double scale = 0.0;
  cpu::AttentionBlocks blocks{};
  const char* tag = "";
};

std::string spec_name(const Spec& s) {
  std::string n = "attention_B" + std::to_string(s.B) + "_Hq" + std::to_string(s.Hq) + "_Hkv" + std::to_string(s.Hkv) +
                  "_T" + std::to_string(s.T) + "_S" + std::to_string(s.S) + "_D" + std::to_string(s.D) + "_Dv" +
                  std::to_string(s.Dv) + (s.causal ? "_causal" : "_bidir");
  if (s.window) n += "_win" + std::to_string(s.window);
  if (s.mask == Mask::TS) n += "_maskTS";
  if (s.mask == Mask::B1TS) n += "_maskB1TS";
  if (s.mask == Mask::DeadRow) n += "_maskDeadRow";
  if (s.mask != Mask::None) n += s.mask_grad ? "_dmask" : "_nodmask";
  if (s.q_transposed) n += "_qT";
  if (s.scale != 0.0) n += "_scaled";
  if (s.blocks.q != cpu::kAttnBlockQ || s.blocks.k != cpu::kAttnBlockK || s.blocks.splits)
    n += "_blk" + std::to_string(s.blocks.q) + "x" + std::to_string(s.blocks.k) + "s" + std::to_string(s.blocks.splits);
  return n + s.tag;
}

// Additive mask [T, S] with -inf on query row 1 (that row sees nothing) and a few other hidden keys.
Tensor dead_row_mask(Generator& g, int64_t T, int64_t S, DType dt) {
  Tensor m = randn(g, {T, S}, DType::F64, 0.5);
  auto v = m.to_vector<double>();
  const double ninf = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < S; ++j) v[size_t(1 * S + j)] = ninf;
  for (int64_t i = 0; i < T; ++i)
    if (i != 1 && S > 1) v[size_t(i * S + (i * 7) % S)] = ninf;
  Tensor out = Tensor::empty({T, S}, dt);
  copy_into(out, Tensor::from_vector(v, {T, S}));
  return out;
}

OpCase make_case(const Spec& s) {
  OpCase c;
  c.kind = OpKind::Attention;
  c.name = spec_name(s);
  c.inputs = [s](Generator& g, DType dt) {
    Shape qs = s.q_transposed ? Shape{s.B, s.T, s.Hq, s.D} : Shape{s.B, s.Hq, s.T, s.D};
    std::vector<Tensor> in = {randn(g, qs, dt), randn(g, {s.B, s.Hkv, s.S, s.D}, dt),
                              randn(g, {s.B, s.Hkv, s.S, s.Dv}, dt)};
    if (s.mask == Mask::TS) in.push_back(randn(g, {s.T, s.S}, dt, 0.5));
    if (s.mask == Mask::B1TS) in.push_back(randn(g, {s.B, 1, s.T, s.S}, dt, 0.5));
    if (s.mask == Mask::DeadRow) in.push_back(dead_row_mask(g, s.T, s.S, dt));
    return in;
  };
  c.fn = [s](const std::vector<Tensor>& in) {
    cpu::ScopedAttentionBlocks blocks(s.blocks);
    AttentionOptions o;
    o.causal = s.causal;
    o.window = s.window;
    o.scale = s.scale;
    if (in.size() > 3) o.mask = in[3];
    Tensor q = s.q_transposed ? in[0].transpose(1, 2) : in[0];
    return attention(q, in[1], in[2], o);
  };
  if (s.mask != Mask::None) c.diff = {true, true, true, s.mask_grad};
  return c;
}

std::vector<OpCase> attention_cases() {
  const cpu::AttentionBlocks small{8, 16, 0}, tiny{4, 8, 3};
  std::vector<Spec> specs = {
      // sizes 1, odd and prime; causal and bidirectional; Dv != D
      {.B = 1, .Hq = 1, .Hkv = 1, .T = 1, .S = 1, .D = 4, .Dv = 4, .causal = true},
      {.B = 2, .Hq = 2, .Hkv = 2, .T = 5, .S = 5, .D = 8, .Dv = 8, .causal = true},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 13, .S = 13, .D = 16, .Dv = 16},
      {.B = 2, .Hq = 1, .Hkv = 1, .T = 17, .S = 17, .D = 8, .Dv = 12, .causal = true},
      {.B = 1, .Hq = 1, .Hkv = 1, .T = 33, .S = 33, .D = 4, .Dv = 4, .causal = true},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 13, .S = 13, .D = 8, .Dv = 8, .causal = true, .scale = 0.3},
      // T != S: decoding one or a few new tokens against a cache (bottom-right causal)
      {.B = 2, .Hq = 2, .Hkv = 2, .T = 1, .S = 13, .D = 8, .Dv = 8, .causal = true},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 3, .S = 13, .D = 8, .Dv = 8, .causal = true},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 3, .S = 13, .D = 8, .Dv = 8},
      {.B = 1, .Hq = 1, .Hkv = 1, .T = 13, .S = 5, .D = 8, .Dv = 8},
      // sliding window
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 17, .S = 17, .D = 8, .Dv = 8, .causal = true, .window = 5},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 3, .S = 13, .D = 8, .Dv = 8, .causal = true, .window = 4},
      // GQA
      {.B = 1, .Hq = 4, .Hkv = 2, .T = 13, .S = 13, .D = 8, .Dv = 8, .causal = true},
      {.B = 2, .Hq = 3, .Hkv = 1, .T = 5, .S = 9, .D = 8, .Dv = 4},
      // additive masks, broadcast from [T, S] and [B, 1, T, S]
      {.B = 2, .Hq = 2, .Hkv = 2, .T = 13, .S = 13, .D = 8, .Dv = 8, .mask = Mask::TS, .mask_grad = true},
      {.B = 2, .Hq = 2, .Hkv = 2, .T = 13, .S = 13, .D = 8, .Dv = 8, .mask = Mask::TS},
      {.B = 2, .Hq = 2, .Hkv = 1, .T = 5, .S = 13, .D = 8, .Dv = 8, .causal = true, .mask = Mask::B1TS},
      {.B = 2, .Hq = 2, .Hkv = 2, .T = 5, .S = 5, .D = 4, .Dv = 4, .mask = Mask::B1TS, .mask_grad = true},
      // non-contiguous q (from [B, T, H, D])
      {.B = 2, .Hq = 2, .Hkv = 2, .T = 13, .S = 13, .D = 8, .Dv = 8, .causal = true, .q_transposed = true},
      {.B = 1, .Hq = 4, .Hkv = 2, .T = 70, .S = 70, .D = 8, .Dv = 8, .causal = true, .q_transposed = true},
      // rows that see no key: causal with T > S (first T - S rows), and a mask row of -inf
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 5, .S = 3, .D = 8, .Dv = 8, .causal = true},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 5, .S = 13, .D = 8, .Dv = 8, .mask = Mask::DeadRow},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 5, .S = 13, .D = 8, .Dv = 8, .mask = Mask::DeadRow, .mask_grad = true},
      // tiled: larger than and not a multiple of the default 64 x 64 tiles
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 70, .S = 70, .D = 8, .Dv = 8, .causal = true},
      {.B = 1, .Hq = 2, .Hkv = 1, .T = 70, .S = 70, .D = 8, .Dv = 8},
      {.B = 1, .Hq = 1, .Hkv = 1, .T = 67, .S = 131, .D = 8, .Dv = 8, .causal = true, .window = 70},
      // tiled with shrunk tiles (several query/key tiles, partial edge tiles, split dQ partials)
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 33, .S = 33, .D = 8, .Dv = 8, .causal = true, .blocks = small},
      {.B = 1, .Hq = 2, .Hkv = 1, .T = 17, .S = 33, .D = 8, .Dv = 8, .causal = true, .window = 9, .blocks = tiny},
      {.B = 2, .Hq = 3, .Hkv = 1, .T = 13, .S = 13, .D = 8, .Dv = 4, .mask = Mask::TS, .blocks = tiny},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 33, .S = 17, .D = 8, .Dv = 8, .causal = true, .blocks = tiny},
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 5, .S = 13, .D = 8, .Dv = 8, .mask = Mask::DeadRow, .blocks = tiny},
  };
  std::vector<OpCase> cs;
  for (const auto& s : specs) cs.push_back(make_case(s));
  return cs;
}

LMLAB_OP_CASES(attention_cases());

}  // namespace
}  // namespace lmlab::test
