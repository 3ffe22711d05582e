// GGUF tokenizer metadata (tokenizer.ggml.*, llama.cpp gguf-py constants.py and llama-vocab.cpp)
// <-> lmlab::Tokenizer, for both vocabulary kinds llama.cpp calls "gpt2" (byte-level BPE: tokens,
// token_type, merges, and a `pre` name for the pre-tokenizer regex) and "llama" (SentencePiece:
// tokens, scores, token_type, add_space_prefix). Token types: 1 normal, 2 unknown, 3 control,
// 4 user-defined, 5 unused, 6 byte.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "lmlab/io/gguf.h"
#include "lmlab/tokenizer/tokenizer.h"

namespace lmlab {

// The tokenizer of a GGUF file; null when it has no tokenizer.ggml.tokens. FormatError names the
// file and key: an unknown tokenizer.ggml.model or tokenizer.ggml.pre (gpt2: "gpt-2",
// "llama-bpe"/"llama3"/"llama-v3", "smaug-bpe", "qwen2", "default" or absent = llama.cpp's
// default regexes), arrays of the wrong type or length, a token_type outside 1..6.
// add_bos_token / add_eos_token become the post-processing template (Tokenizer::post_process).
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& f);

// Writes the tokenizer.ggml.* keys for `tok`. bos_id / eos_id < 0 take the tokenizer's own.
// ValueError when a byte-level tokenizer's pre-tokenizer has no llama.cpp `pre` name (llama.cpp
// would refuse the file or split text differently).
void write_gguf_tokenizer(GgufWriter& w, const Tokenizer& tok, int64_t bos_id = -1, int64_t eos_id = -1);

// llama.cpp's tokenizer.ggml.pre for a byte-level tokenizer, or nullopt when there is none.
std::optional<std::string> gguf_pre_name(const Tokenizer& tok);

}  // namespace lmlab
