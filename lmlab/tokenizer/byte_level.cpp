// GPT-2 byte-level alphabet: the table and its inverse (see byte_level.h).
#include "lmlab/tokenizer/byte_level.h"

#include <array>

namespace lmlab::byte_level {

namespace {

bool printable(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

std::string utf8_of(char32_t c) {
  std::string s;
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6));
    s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xE0 | (c >> 12));
    s += char(0x80 | ((c >> 6) & 0x3F));
    s += char(0x80 | (c & 0x3F));
  }
  return s;
}

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  // Inverse over the code points the table uses (all below U+0144); -1 where no byte maps.
  std::array<int16_t, 0x200> from_char{};
  Tables() {
    from_char.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      char32_t c = printable(b) ? char32_t(b) : char32_t(256 + extra++);
      to_char[b] = c;
      to_utf8[b] = utf8_of(c);
      from_char[c] = int16_t(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

// Decodes one UTF-8 code point at s[i]; returns its length, or 0 when malformed.
size_t next_cp(std::string_view s, size_t i, char32_t* cp) {
  auto u = [&](size_t k) { return uint8_t(s[k]); };
  uint8_t c = u(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  char32_t v = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((u(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (u(i + k) & 0x3F);
  }
  *cp = v;
  return n;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }
const std::string& byte_to_utf8(uint8_t b) { return tables().to_utf8[b]; }

std::string encode(std::string_view bytes) {
  const Tables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) out += t.to_utf8[uint8_t(ch)];
  return out;
}

std::string decode(std::string_view mapped) {
  const Tables& t = tables();
  std::string out;
  out.reserve(mapped.size());
  size_t i = 0;
  while (i < mapped.size()) {
    char32_t cp = 0;
    size_t n = next_cp(mapped, i, &cp);
    if (n == 0) {
      out += mapped[i++];
      continue;
    }
    if (cp < t.from_char.size() && t.from_char[cp] >= 0) {
      out += char(uint8_t(t.from_char[cp]));
    } else {
      out.append(mapped.substr(i, n));
    }
    i += n;
  }
  return out;
}

bool single_byte(std::string_view mapped, uint8_t* byte) {
  char32_t cp = 0;
  if (mapped.empty() || next_cp(mapped, 0, &cp) != mapped.size()) return false;
  const Tables& t = tables();
  if (cp >= t.from_char.size() || t.from_char[cp] < 0) return false;
  *byte = uint8_t(t.from_char[cp]);
  return true;
}

}  // namespace lmlab::byte_level
