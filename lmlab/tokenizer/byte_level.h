// GPT-2 byte-level alphabet (Radford et al. 2019, openai/gpt-2 encoder.py bytes_to_unicode; the
// HF tokenizers ByteLevel pre-tokenizer/decoder use the same table): every byte 0..255 maps to one
// printable code point, so any byte string becomes a string of "visible" symbols and back.
// Printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map to themselves; the other 68 bytes map to
// U+0100, U+0101, ... in byte order (so ' ' -> 'Ġ' U+0120, '\n' -> 'Ċ' U+010A).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace lmlab::byte_level {

// The code point that stands for byte b.
char32_t byte_to_char(uint8_t b);
// UTF-8 of byte_to_char(b) (1 or 2 bytes).
const std::string& byte_to_utf8(uint8_t b);
// Byte-maps a raw byte string: each byte becomes the UTF-8 of its code point.
std::string encode(std::string_view bytes);
// Reverses encode() on a vocabulary string. Code points outside the alphabet (e.g. an added
// token's "<|x|>" is fine, but a stray 'ĸ'-like char that no byte maps to) are kept as their own
// UTF-8, which is what HF's ByteLevel decoder does; malformed UTF-8 is copied through byte by byte.
std::string decode(std::string_view mapped);
// True when `mapped` is exactly one byte symbol; writes the byte.
bool single_byte(std::string_view mapped, uint8_t* byte);

}  // namespace lmlab::byte_level
