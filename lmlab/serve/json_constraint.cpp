// The JSON-object prefix grammar of response_format json_object.
#include "lmlab/serve/json_constraint.h"

namespace lmlab::serve {

namespace {
bool ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool hex(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
}  // namespace

// Number sub-states: 1 after '-', 2 after a leading 0, 3 in integer digits, 4 after '.', 5 in
// fraction digits, 6 after 'e', 7 after the exponent's sign, 8 in exponent digits. Complete in 2, 3,
// 5 and 8.
static bool number_complete(uint8_t s) { return s == 2 || s == 3 || s == 5 || s == 8; }

void JsonPrefix::end_value() {
  mode_ = stack_.empty() ? Mode::Done : Mode::AfterValue;
}

bool JsonPrefix::value_start(char c) {
  if (!started_) {  // the top level must be an object
    if (c != '{') return false;
    started_ = true;
  }
  switch (c) {
    case '{':
      stack_.push_back('{');
      mode_ = Mode::KeyOrEnd;
      return true;
    case '[':
      stack_.push_back('[');
      mode_ = Mode::ValueOrEnd;
      return true;
    case '"':
      mode_ = Mode::String;
      key_ = false;
      esc_ = 0;
      utf8_ = 0;
      return true;
    case 't': lit_ = "true"; break;
    case 'f': lit_ = "false"; break;
    case 'n': lit_ = "null"; break;
    default:
      if (c == '-' || digit(c)) {
        mode_ = Mode::Number;
        num_ = c == '-' ? 1 : c == '0' ? 2 : 3;
        return true;
      }
      return false;
  }
  mode_ = Mode::Literal;
  lit_pos_ = 1;
  return true;
}

bool JsonPrefix::after_value(char c) {
  if (ws(c)) return true;
  if (stack_.empty()) return false;
  char top = stack_.back();
  if (c == ',') {
    mode_ = top == '{' ? Mode::Key : Mode::Value;
    return true;
  }
  if ((c == '}' && top == '{') || (c == ']' && top == '[')) {
    stack_.pop_back();
    end_value();
    return true;
  }
  return false;
}

bool JsonPrefix::feed(char c) {
  switch (mode_) {
    case Mode::Done: return ws(c);
    case Mode::Value:
      if (ws(c)) return true;
      return value_start(c);
    case Mode::ValueOrEnd:
      if (ws(c)) return true;
      if (c == ']') {
        stack_.pop_back();
        end_value();
        return true;
      }
      return value_start(c);
    case Mode::KeyOrEnd:
    case Mode::Key:
      if (ws(c)) return true;
      if (c == '}' && mode_ == Mode::KeyOrEnd) {
        stack_.pop_back();
        end_value();
        return true;
      }
      if (c != '"') return false;
      mode_ = Mode::String;
      key_ = true;
      esc_ = 0;
      utf8_ = 0;
      return true;
    case Mode::Colon:
      if (ws(c)) return true;
      if (c != ':') return false;
      mode_ = Mode::Value;
      return true;
    case Mode::AfterValue: return after_value(c);
    case Mode::String: {
      unsigned char u = static_cast<unsigned char>(c);
      if (utf8_ > 0) {  // inside a multi-byte character
        if ((u & 0xC0) != 0x80) return false;
        --utf8_;
        return true;
      }
      if (u >= 0x80) {  // a lead byte: C2-DF (2 bytes), E0-EF (3), F0-F4 (4)
        if (u >= 0xC2 && u <= 0xDF) utf8_ = 1;
        else if (u >= 0xE0 && u <= 0xEF) utf8_ = 2;
        else if (u >= 0xF0 && u <= 0xF4) utf8_ = 3;
        else return false;
        if (esc_ != 0) return false;
        return true;
      }
      if (esc_ == 1) {
        if (c == 'u') esc_ = 5;
        else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') esc_ = 0;
        else return false;
        return true;
      }
      if (esc_ >= 2) {
        if (!hex(c)) return false;
        esc_ = esc_ == 2 ? 0 : uint8_t(esc_ - 1);
        return true;
      }
      if (c == '\\') {
        esc_ = 1;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c == '"') {
        if (key_) mode_ = Mode::Colon;
        else end_value();
      }
      return true;
    }
    case Mode::Literal:
      if (c != lit_[lit_pos_]) return false;
      if (lit_[++lit_pos_] == '\0') end_value();
      return true;
    case Mode::Number: {
      uint8_t s = num_;
      auto set = [&](uint8_t n) {
        num_ = n;
        return true;
      };
      if (digit(c)) {
        if (s == 1) return set(c == '0' ? 2 : 3);
        if (s == 2) return false;  // no leading zeros
        if (s == 3 || s == 5 || s == 8) return true;
        if (s == 4) return set(5);
        if (s == 6 || s == 7) return set(8);
      }
      if (c == '.' && (s == 2 || s == 3)) return set(4);
      if ((c == 'e' || c == 'E') && (s == 2 || s == 3 || s == 5)) return set(6);
      if ((c == '+' || c == '-') && s == 6) return set(7);
      if (!number_complete(s)) return false;
      // the number ended: this byte belongs to what follows it
      Mode saved = mode_;
      end_value();
      if (feed(c)) return true;
      mode_ = saved;
      return false;
    }
  }
  return false;
}

bool JsonPrefix::feed(std::string_view s) {
  for (char c : s)
    if (!feed(c)) return false;
  return true;
}

}  // namespace lmlab::serve
