// tokenizer.json sections of SentencePiece-style tokenizers (internal to the tokenizer layer,
// used by tokenizer_json.cpp): the normalizer / Metaspace pre-tokenizer pair and the decoder chain,
// read strictly (FormatError naming the file and field) and written in HF's layout.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmlab/tokenizer/spm.h"

namespace lmlab::spm_json {

// True when the sections describe a SentencePiece-style tokenizer: a Metaspace pre-tokenizer, or
// no pre-tokenizer and a normalizer (Llama-2's Prepend/Replace).
bool is_spm(const nlohmann::json& normalizer, const nlohmann::json& pre_tokenizer);
// `where` is "[tokenizer] path". Accepts normalizer Sequence[Prepend("▁")?, Replace(" ", "▁")]
// with pre_tokenizer null, or normalizer null with pre_tokenizer Metaspace("▁", prepend_scheme,
// split) (possibly inside a one-element Sequence).
SpmNormalization read_normalization(const nlohmann::json& normalizer, const nlohmann::json& pre_tokenizer,
                                    const std::string& where);
// null (no steps) or Replace / ByteFallback / Fuse / Strip / Metaspace, possibly in a Sequence.
std::vector<SpmDecodeStep> read_decoder(const nlohmann::json& decoder, const std::string& where);

nlohmann::ordered_json normalizer_json(const SpmNormalization& n);
nlohmann::ordered_json pre_tokenizer_json(const SpmNormalization& n);
nlohmann::ordered_json decoder_json(const std::vector<SpmDecodeStep>& steps);

}  // namespace lmlab::spm_json
