// SentencePiece-style text handling around the model (see spm.h): the "▁" normalization of text
// segments and the decoder chain. References: HF tokenizers normalizers/{prepend,replace}.rs,
// pre_tokenizers/metaspace.rs, decoders/{byte_fallback,fuse,strip}.rs; llama.cpp
// llama_escape_whitespace and the add_space_prefix handling in llama_vocab::tokenize.
#include "lmlab/tokenizer/spm.h"

namespace lmlab {

namespace {

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t i = 0;
  while (i < s.size()) {
    size_t j = from.empty() ? std::string_view::npos : s.find(from, i);
    if (j == std::string_view::npos) break;
    out.append(s.substr(i, j - i));
    out.append(to);
    i = j + from.size();
  }
  out.append(s.substr(i));
  return out;
}

int byte_token_value(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int v = 0;
  for (char c : t.substr(3, 2)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = uint8_t(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

}  // namespace

void SpmNormalization::apply(std::string_view segment, bool at_start, std::vector<std::string>& pieces) const {
  if (segment.empty()) return;
  std::string s = replace_all(segment, " ", kSpmSpace);
  bool add = false;
  if (style == Style::Legacy) {
    add = prepend != Prepend::Never;  // HF Prepend adds to any non-empty text, even one starting with "▁"
  } else {
    add = !s.starts_with(kSpmSpace) && (prepend == Prepend::Always || (prepend == Prepend::First && at_start));
  }
  if (add) s.insert(0, kSpmSpace);
  if (style == Style::Legacy || !split) {
    pieces.push_back(std::move(s));
    return;
  }
  // Metaspace split: each "▁" starts a new piece (HF MergedWithNext).
  size_t from = 0;
  for (size_t i = s.find(kSpmSpace, 1); i != std::string::npos; i = s.find(kSpmSpace, i + kSpmSpace.size())) {
    pieces.push_back(s.substr(from, i - from));
    from = i;
  }
  pieces.push_back(s.substr(from));
}

std::vector<SpmDecodeStep> llama_spm_decoder(bool strip) {
  std::vector<SpmDecodeStep> steps(strip ? 4 : 3);
  steps[0].kind = SpmDecodeStep::Kind::Replace;
  steps[0].pattern = std::string(kSpmSpace);
  steps[0].content = " ";
  steps[1].kind = SpmDecodeStep::Kind::ByteFallback;
  steps[2].kind = SpmDecodeStep::Kind::Fuse;
  if (strip) {
    steps[3].kind = SpmDecodeStep::Kind::Strip;
    steps[3].content = " ";
    steps[3].start = 1;
    steps[3].stop = 0;
  }
  return steps;
}

std::string spm_decode_tokens(std::vector<std::string> tokens, const std::vector<SpmDecodeStep>& steps) {
  for (const SpmDecodeStep& st : steps) {
    switch (st.kind) {
      case SpmDecodeStep::Kind::Replace:
        for (std::string& t : tokens) t = replace_all(t, st.pattern, st.content);
        break;
      case SpmDecodeStep::Kind::ByteFallback: {
        std::vector<std::string> merged;
        std::string run;
        size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          // HF keeps one token per byte when the run is not valid UTF-8 (it writes U+FFFD for
          // each); the token count matters to a later Metaspace step, the bytes are kept.
          if (valid_utf8(run)) merged.push_back(run);
          else
            for (char c : run) merged.emplace_back(1, c);
          run.clear();
          run_tokens = 0;
        };
        for (std::string& t : tokens) {
          int b = byte_token_value(t);
          if (b >= 0) {
            run.push_back(char(b));
            ++run_tokens;
            continue;
          }
          flush();
          merged.push_back(std::move(t));
        }
        flush();
        tokens = std::move(merged);
        break;
      }
      case SpmDecodeStep::Kind::Fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case SpmDecodeStep::Kind::Strip:
        for (std::string& t : tokens) {
          const std::string& c = st.content;
          size_t lo = 0, hi = t.size();
          for (int32_t k = 0; k < st.start && !c.empty() && t.compare(lo, c.size(), c) == 0 && lo + c.size() <= hi; ++k)
            lo += c.size();
          for (int32_t k = 0; k < st.stop && !c.empty() && hi >= lo + c.size() && t.compare(hi - c.size(), c.size(), c) == 0;
               ++k)
            hi -= c.size();
          t = t.substr(lo, hi - lo);
        }
        break;
      case SpmDecodeStep::Kind::Metaspace:
        for (size_t i = 0; i < tokens.size(); ++i)
          tokens[i] = replace_all(tokens[i], st.pattern,
                                  i == 0 && st.prepend != SpmNormalization::Prepend::Never ? "" : " ");
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace lmlab
