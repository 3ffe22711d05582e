// The op registry: every differentiable op lmlab defines, by name. Adding an op means adding it here
// (the static_assert below keeps the name table in step) and giving it cases in tests/ops/ — a test
// walks this enum and fails for any op without a case (ggml's GGML_OP_COUNT guard).
#pragma once
#include <array>
#include <string_view>

namespace lmlab {

#define LMLAB_OP_LIST(X)                                                                          \
  X(Add) X(Sub) X(Mul) X(Div) X(Neg) X(Exp) X(Log) X(Sqrt) X(Rsqrt) X(Pow) X(Abs) X(Tanh)          \
  X(Sigmoid) X(Silu) X(GeluTanh) X(GeluExact) X(Relu) X(Softplus) X(Clamp) X(Where) X(MaskedFill)  \
  X(Sum) X(Mean) X(Max) X(Min) X(Argmax) X(Logsumexp) X(Var)                                       \
  X(Matmul) X(Softmax) X(LogSoftmax) X(CrossEntropy) X(Embedding) X(RmsNorm) X(LayerNorm) X(Rope)  \
  X(Swiglu) X(Concat) X(Stack) X(Split) X(Chunk) X(Gather) X(ScatterAdd) X(IndexSelect) X(IndexAdd)  \
  X(Topk) X(Sort) X(Argsort) X(Cumsum) X(Tril) X(Triu) X(OneHot) X(Dropout) X(Attention)            \
  X(GatedDeltaRule)                                                                                \
  X(Contiguous) X(Reshape) X(Transpose) X(Permute) X(Slice) X(Select) X(Expand) X(Cast)

enum class OpKind {
#define LMLAB_OP_ENUM(name) name,
  LMLAB_OP_LIST(LMLAB_OP_ENUM)
#undef LMLAB_OP_ENUM
      Count
};

inline constexpr std::array kOpNames = {
#define LMLAB_OP_NAME(name) std::string_view(#name),
    LMLAB_OP_LIST(LMLAB_OP_NAME)
#undef LMLAB_OP_NAME
};
static_assert(kOpNames.size() == size_t(OpKind::Count), "op name table out of step with OpKind");

inline constexpr std::string_view op_name(OpKind k) { return kOpNames[size_t(k)]; }

}  // namespace lmlab
