// response_format {"type": "json_object"}: a byte-level JSON grammar that says whether a text is a
// prefix of a JSON object (RFC 8259: an object at the top, whitespace around, strings in UTF-8), fed
// byte by byte and
// cheap to copy, so that decoding can allow only the tokens that keep the reply valid and end
// it once the object is complete.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace lmlab::serve {

class JsonPrefix {
 public:
  // Feeds one byte; false (and no change) when the text would stop being a prefix of a JSON object.
  bool feed(char c);
  // Feeds bytes; false if any is refused (the state is then undefined: feed a copy).
  bool feed(std::string_view s);
  // The text is a whole JSON object (only whitespace may follow).
  bool complete() const { return mode_ == Mode::Done; }

 private:
  enum class Mode : uint8_t { Value, KeyOrEnd, Key, Colon, AfterValue, ValueOrEnd, String, Number, Literal, Done };
  Mode mode_ = Mode::Value;
  std::vector<char> stack_;   // '{' or '['
  bool key_ = false;          // the string being read is an object key
  uint8_t esc_ = 0;           // in a string: 1 after '\', 2-5 hex digits of \u still to come
  uint8_t utf8_ = 0;          // in a string: continuation bytes of a UTF-8 character still to come
  uint8_t num_ = 0;           // number sub-state (see feed)
  const char* lit_ = nullptr; // the literal being read (true, false, null) and how far
  uint8_t lit_pos_ = 0;
  bool started_ = false;      // the top-level value has begun

  bool value_start(char c);
  bool after_value(char c);
  void end_value();
};

}  // namespace lmlab::serve
