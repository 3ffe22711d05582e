// Lexer and parser of the Jinja engine, following jinja2's (jinja2/lexer.py, jinja2/parser.py) with
// transformers' settings: trim_blocks (one newline after a block or comment tag is dropped),
// lstrip_blocks (spaces and tabs from the start of a line to a block or comment tag are dropped),
// keep_trailing_newline off (one trailing newline of the template is dropped), newlines normalised
// to \n. The grammar and operator precedence are jinja2's:
//   condexpr < or < and < not < compare (== != < <= > >= in, not in) < + - < ~ < * / // % < ** <
//   unary - + < primary with postfix (. [] ()) and then filters (|) and tests (is).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "lmlab/chat/jinja.h"
#include "lmlab/chat/jinja_ast.h"
#include "lmlab/chat/jinja_interp.h"

namespace lmlab::jinja {
namespace {

using namespace ast;

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Data, Name, String (decoded), Op; Int/Float source text
  Value value;       // Int, Float
  int line;
};

[[noreturn]] void fail(const std::string& name, int line, const std::string& msg) {
  throw TemplateError(name + ":" + std::to_string(line) + ": " + msg);
}

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python's str.rstrip() on UTF-8 (Unicode whitespace).
std::string rstrip_py(std::string_view s) {
  auto cps = utf8_decode(s);
  size_t end = cps.size();
  while (end > 0 && is_py_space(cps[end - 1])) --end;
  return utf8_encode(cps, 0, end);
}

// True when s is non-empty and all (Unicode) whitespace: jinja2's whitespace_re.fullmatch.
bool all_space(std::string_view s) {
  if (s.empty()) return false;
  for (uint32_t cp : utf8_decode(s))
    if (!is_py_space(cp)) return false;
  return true;
}

// Decodes a string literal's body as jinja2 does (Python's unicode-escape over the ASCII-escaped
// text): \n \t \r \\ \' \" \a \b \f \v \0-\777 \xHH \uHHHH \UHHHHHHHH; any other escape stays as is.
std::string decode_string(std::string_view body, const std::string& name, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    auto hex = [&](int n) -> uint32_t {
      if (i + size_t(n) >= body.size())
        fail(name, line, "truncated \\x, \\u or \\U escape in a string literal");
      uint32_t v = 0;
      for (int k = 1; k <= n; ++k) {
        char h = body[i + size_t(k)];
        int d = std::isdigit(uint8_t(h)) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
        if (d < 0) fail(name, line, "bad hex digit in a \\x, \\u or \\U escape of a string literal");
        v = v * 16 + uint32_t(d);
      }
      i += size_t(n);
      return v;
    };
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x': utf8_append(out, hex(2)); break;
      case 'u': utf8_append(out, hex(4)); break;
      case 'U': {
        uint32_t cp = hex(8);
        if (cp > 0x10FFFF) fail(name, line, "\\U escape beyond U+10FFFF in a string literal");
        utf8_append(out, cp);
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t v = uint32_t(e - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            v = v * 8 + uint32_t(body[++i] - '0');
          utf8_append(out, v);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string_view src, std::string name) : name_(std::move(name)) {
    // newlines normalised; one trailing newline dropped (keep_trailing_newline=False)
    src_.reserve(src.size());
    for (size_t i = 0; i < src.size(); ++i) {
      if (src[i] == '\r') {
        src_ += '\n';
        if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
      } else {
        src_ += src[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Token> run() {
    size_t n = src_.size();
    while (pos_ < n) {
      size_t t = find_tag(pos_);
      if (t == std::string::npos) {
        emit_data(src_.substr(pos_));
        break;
      }
      char kind = src_[t + 1];
      char sign = (t + 2 < n && (src_[t + 2] == '-' || src_[t + 2] == '+')) ? src_[t + 2] : 0;
      std::string text = src_.substr(pos_, t - pos_);
      int text_lines = int(std::count(text.begin(), text.end(), '\n'));
      size_t raw_end = kind == '%' ? match_raw_begin(t) : 0;
      text = strip_before(text, sign, kind != '{');
      emit_data(text);
      line_ += text_lines;
      line_starting_ = false;
      if (raw_end) {
        lex_raw(raw_end);
        continue;
      }
      size_t start = t + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        lex_comment(start);
        continue;
      }
      pos_ = start;
      lex_tag(kind == '%');
    }
    tokens_.push_back({Tok::Eof, "", {}, line_});
    return std::move(tokens_);
  }

 private:
  std::string src_, name_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;

  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i)
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  void emit_data(const std::string& text) {
    if (text.empty()) return;
    if (!tokens_.empty() && tokens_.back().type == Tok::Data) tokens_.back().text += text;
    else tokens_.push_back({Tok::Data, text, {}, line_});
  }

  // The text before a tag: '-' strips all trailing whitespace; otherwise lstrip_blocks strips the
  // spaces before a block or comment tag that starts its line (jinja2's OptionalLStrip).
  std::string strip_before(const std::string& text, char sign, bool block_or_comment) const {
    if (sign == '-') return rstrip_py(text);
    if (sign != '+' && block_or_comment) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && all_space(std::string_view(text).substr(l_pos)))
        return text.substr(0, l_pos);
    }
    return text;
  }

  size_t skip_ws(size_t p) const {
    while (p < src_.size() && ascii_space(src_[p])) ++p;
    return p;
  }

  // {%[-+]? raw %} at t: returns the position after it, or 0.
  size_t match_raw_begin(size_t t) const {
    size_t p = t + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = skip_ws(p);
    if (src_.compare(p, 3, "raw") != 0) return 0;
    p += 3;
    size_t q = skip_ws(p);
    if (q == p && q < src_.size() && src_[q] != '-' && src_[q] != '%') return 0;  // "rawx"
    if (src_.compare(q, 3, "-%}") == 0) return skip_ws(q + 3);
    if (src_.compare(q, 2, "%}") == 0) return q + 2;
    return 0;
  }

  void lex_raw(size_t from) {
    for (size_t p = from; p + 1 < src_.size(); ++p) {
      if (src_[p] != '{' || src_[p + 1] != '%') continue;
      size_t q = p + 2;
      char sign = 0;
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
      q = skip_ws(q);
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q = skip_ws(q + 6);
      size_t end;
      if (src_.compare(q, 3, "+%}") == 0) end = q + 3;
      else if (src_.compare(q, 3, "-%}") == 0) end = skip_ws(q + 3);
      else if (src_.compare(q, 2, "%}") == 0) end = q + 2 + ((q + 2 < src_.size() && src_[q + 2] == '\n') ? 1 : 0);
      else continue;
      std::string body = src_.substr(from, p - from);
      int lines = int(std::count(src_.begin() + long(from), src_.begin() + long(end), '\n'));
      emit_data(strip_before(body, sign, true));
      line_ += lines;
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    fail(name_, line_, "missing end of raw directive");
  }

  void lex_comment(size_t from) {
    for (size_t p = from; p + 1 < src_.size(); ++p) {
      size_t end = 0;
      if (src_.compare(p, 3, "+#}") == 0) end = p + 3;
      else if (src_.compare(p, 3, "-#}") == 0) end = skip_ws(p + 3);
      else if (src_.compare(p, 2, "#}") == 0) end = p + 2 + ((p + 2 < src_.size() && src_[p + 2] == '\n') ? 1 : 0);
      if (!end) continue;
      line_ += int(std::count(src_.begin() + long(from), src_.begin() + long(end), '\n'));
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return;
    }
    fail(name_, line_, "missing end of comment tag");
  }

  void lex_tag(bool block) {
    tokens_.push_back({block ? Tok::BlockBegin : Tok::VarBegin, "", {}, line_});
    std::vector<char> balance;
    size_t n = src_.size();
    while (true) {
      if (pos_ >= n) fail(name_, line_, block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          if (src_.compare(pos_, 3, "+%}") == 0) end = pos_ + 3;
          else if (src_.compare(pos_, 3, "-%}") == 0) end = skip_ws(pos_ + 3);
          else if (src_.compare(pos_, 2, "%}") == 0) end = pos_ + 2 + ((pos_ + 2 < n && src_[pos_ + 2] == '\n') ? 1 : 0);
        } else {
          if (src_.compare(pos_, 3, "-}}") == 0) end = skip_ws(pos_ + 3);
          else if (src_.compare(pos_, 2, "}}") == 0) end = pos_ + 2;
        }
        if (end) {
          tokens_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", {}, line_});
          line_ += int(std::count(src_.begin() + long(pos_), src_.begin() + long(end), '\n'));
          line_starting_ = src_[end - 1] == '\n';
          pos_ = end;
          return;
        }
      }
      char c = src_[pos_];
      if (ascii_space(c)) {
        if (c == '\n') ++line_;
        ++pos_;
        continue;
      }
      if (std::isdigit(uint8_t(c))) {
        lex_number();
        continue;
      }
      if (std::isalpha(uint8_t(c)) || c == '_') {
        size_t b = pos_;
        while (pos_ < n && (std::isalnum(uint8_t(src_[pos_])) || src_[pos_] == '_')) ++pos_;
        tokens_.push_back({Tok::Name, src_.substr(b, pos_ - b), {}, line_});
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t p = pos_ + 1;
        while (p < n && src_[p] != c) p += src_[p] == '\\' ? 2 : 1;
        if (p >= n) fail(name_, line_, "unterminated string literal");
        std::string body = src_.substr(pos_ + 1, p - pos_ - 1);
        tokens_.push_back({Tok::String, decode_string(body, name_, line_), {}, line_});
        line_ += int(std::count(body.begin(), body.end(), '\n'));
        pos_ = p + 1;
        continue;
      }
      static const char* ops2[] = {"//", "**", "==", "!=", ">=", "<="};
      std::string op;
      for (const char* o : ops2)
        if (src_.compare(pos_, 2, o) == 0) op = o;
      if (op.empty()) {
        if (!std::strchr("+-/*%~[](){}><=.:|,;", c))
          fail(name_, line_, std::string("unexpected char '") + c + "'");
        op = std::string(1, c);
      }
      if (op == "(" || op == "[" || op == "{") {
        balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (balance.empty()) fail(name_, line_, "unexpected '" + op + "'");
        if (balance.back() != op[0])
          fail(name_, line_, "unexpected '" + op + "', expected '" + std::string(1, balance.back()) + "'");
        balance.pop_back();
      }
      tokens_.push_back({Tok::Op, op, {}, line_});
      pos_ += op.size();
    }
  }

  void lex_number() {
    size_t n = src_.size(), b = pos_;
    auto digits = [&](size_t p) {  // (\d+_)*\d+
      size_t q = p;
      while (q < n && (std::isdigit(uint8_t(src_[q])) || (src_[q] == '_' && q + 1 < n && std::isdigit(uint8_t(src_[q + 1])) && q > p)))
        ++q;
      return q;
    };
    // 0x.., 0o.., 0b..
    if (src_[b] == '0' && b + 1 < n && std::strchr("xXoObB", src_[b + 1]) && b + 2 < n && std::isxdigit(uint8_t(src_[b + 2]))) {
      int base = std::tolower(src_[b + 1]) == 'x' ? 16 : std::tolower(src_[b + 1]) == 'o' ? 8 : 2;
      size_t p = b + 2;
      std::string d;
      while (p < n && (std::isxdigit(uint8_t(src_[p])) || src_[p] == '_')) {
        if (src_[p] != '_') d += src_[p];
        ++p;
      }
      pos_ = p;
      const std::string literal = src_.substr(b, p - b);
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(d.c_str(), &end, base);
      if (d.empty() || end != d.c_str() + d.size())
        fail(name_, line_, "invalid base-" + std::to_string(base) + " integer literal " + literal);
      if (errno == ERANGE) fail(name_, line_, "integer literal " + literal + " does not fit in 64 bits");
      tokens_.push_back({Tok::Int, literal, Value::integer(v), line_});
      return;
    }
    size_t p = digits(b);
    bool is_float = false;
    if (p + 1 < n && src_[p] == '.' && std::isdigit(uint8_t(src_[p + 1]))) {
      p = digits(p + 1);
      is_float = true;
    }
    if (p < n && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < n && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < n && std::isdigit(uint8_t(src_[q]))) {
        p = digits(q);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = b; k < p; ++k)
      if (src_[k] != '_') text += src_[k];
    pos_ = p;
    if (is_float) {
      tokens_.push_back({Tok::Float, text, Value::number(std::strtod(text.c_str(), nullptr)), line_});
    } else {
      errno = 0;
      long long v = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(name_, line_, "integer literal " + text + " does not fit in 64 bits");
      tokens_.push_back({Tok::Int, text, Value::integer(v), line_});
    }
  }
};

class Parser {
 public:
  Parser(std::vector<Token> toks, std::string name) : t_(std::move(toks)), name_(std::move(name)) {}

  Body parse_template() {
    Body body = subparse({});
    if (cur().type != Tok::Eof) fail_here("unexpected '" + cur().text + "'");
    return body;
  }

 private:
  std::vector<Token> t_;
  size_t p_ = 0;
  std::string name_;
  std::vector<std::string> tag_stack_;
  std::vector<Stmt*> macro_stack_;  // macros and call blocks being parsed (for varargs/kwargs/caller)

  const Token& cur() const { return t_[p_]; }
  const Token& look(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  void next() {
    if (p_ + 1 < t_.size()) ++p_;
  }
  [[noreturn]] void fail_here(const std::string& msg) const { fail(name_, cur().line, msg); }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  std::string describe(const Token& k) const {
    switch (k.type) {
      case Tok::Eof: return "end of template";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::VarEnd: return "end of print statement";
      case Tok::Data: return "template data";
      default: return k.text;
    }
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail_here(std::string("expected '") + op + "', got '" + describe(cur()) + "'");
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail_here("expected a name, got '" + describe(cur()) + "'");
    std::string s = cur().text;
    next();
    return s;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) fail_here("expected end of statement block, got '" + describe(cur()) + "'");
    next();
  }

  // Statements until a block whose first name is in `ends` (left current: the name) or EOF.
  Body subparse(const std::vector<std::string>& ends) {
    Body body;
    while (cur().type != Tok::Eof) {
      const Token& k = cur();
      if (k.type == Tok::Data) {
        auto s = std::make_unique<Stmt>(Stmt::Output, k.line);
        s->text = k.text;
        body.push_back(std::move(s));
        next();
      } else if (k.type == Tok::VarBegin) {
        int line = k.line;
        next();
        auto s = std::make_unique<Stmt>(Stmt::Print, line);
        s->expr = parse_tuple(false, true, {});
        if (cur().type != Tok::VarEnd) fail_here("expected end of print statement, got '" + describe(cur()) + "'");
        next();
        body.push_back(std::move(s));
      } else if (k.type == Tok::BlockBegin) {
        next();
        if (cur().type == Tok::Name && std::find(ends.begin(), ends.end(), cur().text) != ends.end())
          return body;
        auto st = parse_statement();
        if (st) body.push_back(std::move(st));
      } else {
        fail_here("unexpected '" + describe(k) + "'");
      }
    }
    return body;
  }

  // After "{% name ... %}", the body until one of `ends`; the end name is left current unless drop.
  Body parse_statements(const std::vector<std::string>& ends, bool drop_needle) {
    skip_op(":");
    expect_block_end();
    Body body = subparse(ends);
    if (cur().type == Tok::Eof) {
      std::string want;
      for (const auto& e : ends) want += (want.empty() ? "'" : " or '") + e + "'";
      std::string open = tag_stack_.empty() ? "block" : "'" + tag_stack_.back() + "'";
      fail_here("unexpected end of template: looking for " + want + " to close " + open);
    }
    if (drop_needle) next();
    return body;
  }

  StmtPtr parse_statement() {
    if (cur().type != Tok::Name) fail_here("tag name expected");
    std::string tag = cur().text;
    int line = cur().line;
    tag_stack_.push_back(tag);
    StmtPtr s;
    if (tag == "if") s = parse_if();
    else if (tag == "for") s = parse_for();
    else if (tag == "set") s = parse_set();
    else if (tag == "macro") s = parse_macro();
    else if (tag == "call") s = parse_call_block();
    else if (tag == "filter") s = parse_filter_block();
    else if (tag == "with") s = parse_with();
    else if (tag == "generation") {  // transformers' AssistantTracker: renders its body
      next();
      s = std::make_unique<Stmt>(Stmt::Scope, line);
      s->body = parse_statements({"endgeneration"}, true);
      expect_block_end();
    } else if (tag == "break" || tag == "continue") {
      next();
      bool in_loop = std::find(tag_stack_.begin(), tag_stack_.end() - 1, "for") != tag_stack_.end() - 1;
      if (!in_loop) fail(name_, line, "'" + tag + "' outside of a loop");
      s = std::make_unique<Stmt>(tag == "break" ? Stmt::Break : Stmt::Continue, line);
      expect_block_end();
    } else if (tag == "extends" || tag == "include" || tag == "import" || tag == "from" || tag == "block") {
      fail(name_, line, "unsupported feature '{% " + tag + " %}': chat templates are rendered without a template loader");
    } else if (tag == "do" || tag == "autoescape" || tag == "trans" || tag == "debug") {
      fail(name_, line, "unsupported feature '{% " + tag + " %}' (transformers' environment does not enable it either)");
    } else {
      std::string hint;
      for (auto it = tag_stack_.rbegin() + 1; it != tag_stack_.rend(); ++it) {
        hint = " Jinja was looking for a tag that closes '" + *it + "'.";
        break;
      }
      fail(name_, line, "encountered unknown tag '" + tag + "'." + hint);
    }
    tag_stack_.pop_back();
    return s;
  }

  StmtPtr parse_if() {
    auto s = std::make_unique<Stmt>(Stmt::If, cur().line);
    next();
    while (true) {
      ExprPtr test = parse_tuple(false, false, {});
      Body body = parse_statements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(test), std::move(body));
      std::string end = cur().text;
      next();
      if (end == "elif") continue;
      if (end == "else") s->else_body = parse_statements({"endif"}, true);
      break;
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_for() {
    auto s = std::make_unique<Stmt>(Stmt::For, cur().line);
    next();
    s->target = parse_assign_target(false, {"in"});
    if (!skip_name("in")) fail_here("expected 'in', got '" + describe(cur()) + "'");
    s->expr = parse_tuple(false, false, {"recursive"});
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name("recursive")) fail_here("unsupported feature: recursive for loops");
    s->body = parse_statements({"endfor", "else"}, false);
    std::string end = cur().text;
    next();
    if (end == "else") s->else_body = parse_statements({"endfor"}, true);
    expect_block_end();
    return s;
  }

  StmtPtr parse_set() {
    int line = cur().line;
    next();
    Target target = parse_assign_target(true, {});
    if (skip_op("=")) {
      auto s = std::make_unique<Stmt>(Stmt::Set, line);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {});
      expect_block_end();
      return s;
    }
    auto s = std::make_unique<Stmt>(Stmt::SetBlock, line);
    if (!target.ns_attr.empty() || target.tuple) fail(name_, line, "a block set assigns one name");
    s->target = std::move(target);
    if (is_op("|")) s->expr = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    expect_block_end();
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam mp;
      mp.name = expect_name();
      if (skip_op("=")) mp.def = parse_expression(true);
      else if (!s.params.empty() && s.params.back().def)
        fail_here("non-default argument follows default argument");
      s.params.push_back(std::move(mp));
    }
    expect_op(")");
  }

  StmtPtr parse_macro() {
    auto s = std::make_unique<Stmt>(Stmt::Macro, cur().line);
    next();
    s->text = expect_name();
    parse_signature(*s);
    macro_stack_.push_back(s.get());
    s->body = parse_statements({"endmacro"}, true);
    macro_stack_.pop_back();
    expect_block_end();
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = std::make_unique<Stmt>(Stmt::CallBlock, cur().line);
    next();
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->type != Expr::Call) fail(name_, s->line, "expected a call after {% call %}");
    macro_stack_.push_back(s.get());
    s->body = parse_statements({"endcall"}, true);
    macro_stack_.pop_back();
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = std::make_unique<Stmt>(Stmt::FilterBlock, cur().line);
    next();
    s->expr = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true);
    expect_block_end();
    return s;
  }

  StmtPtr parse_with() {
    auto s = std::make_unique<Stmt>(Stmt::With, cur().line);
    next();
    while (cur().type != Tok::BlockEnd) {
      if (!s->assigns.empty()) expect_op(",");
      Target t = parse_assign_target(false, {});
      expect_op("=");
      s->assigns.emplace_back(std::move(t), parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    expect_block_end();
    return s;
  }

  Target parse_assign_target(bool with_namespace, const std::vector<std::string>& extra_end) {
    Target t;
    if (with_namespace && cur().type == Tok::Name && look().type == Tok::Op && look().text == ".") {
      t.names.push_back(cur().text);
      next();
      next();
      t.ns_attr = expect_name();
      return t;
    }
    while (true) {
      if (!t.names.empty()) {
        if (!skip_op(",")) break;
        t.tuple = true;
      }
      if (cur().type != Tok::Name) {
        if (t.tuple) break;  // trailing comma
        fail_here("can't assign to '" + describe(cur()) + "'");
      }
      if (std::find(extra_end.begin(), extra_end.end(), cur().text) != extra_end.end()) break;
      std::string nm = cur().text;
      if (nm == "true" || nm == "false" || nm == "none" || nm == "True" || nm == "False" || nm == "None")
        fail_here("can't assign to '" + nm + "'");
      t.names.push_back(nm);
      next();
    }
    if (t.names.empty()) fail_here("expected an assignment target");
    return t;
  }

  // ---- expressions ----

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    const Token& k = cur();
    if (k.type == Tok::VarEnd || k.type == Tok::BlockEnd || k.type == Tok::Eof) return true;
    if (k.type == Tok::Op && k.text == ")") return true;
    if (k.type == Tok::Name && std::find(extra_end.begin(), extra_end.end(), k.text) != extra_end.end()) return true;
    return false;
  }

  ExprPtr parse_tuple(bool explicit_parens, bool with_condexpr, const std::vector<std::string>& extra_end) {
    int line = cur().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) fail_here("expected an expression, got '" + describe(cur()) + "'");
    }
    auto e = std::make_unique<Expr>(Expr::TupleLit, line);
    e->items = std::move(args);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    int line = cur().line;
    ExprPtr e1 = parse_or();
    while (skip_name("if")) {
      ExprPtr e2 = parse_or();
      ExprPtr e3;
      if (skip_name("else")) e3 = parse_condexpr();
      auto c = std::make_unique<Expr>(Expr::CondExpr, line);
      c->items.push_back(std::move(e2));
      c->items.push_back(std::move(e1));
      c->items.push_back(std::move(e3));
      e1 = std::move(c);
    }
    return e1;
  }

  ExprPtr binary(Expr::Type t, ExprPtr a, ExprPtr b, int line, std::string op = {}) {
    auto e = std::make_unique<Expr>(t, line);
    e->name = std::move(op);
    e->items.push_back(std::move(a));
    e->items.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_or() {
    int line = cur().line;
    ExprPtr l = parse_and();
    while (skip_name("or")) l = binary(Expr::Or, std::move(l), parse_and(), line);
    return l;
  }
  ExprPtr parse_and() {
    int line = cur().line;
    ExprPtr l = parse_not();
    while (skip_name("and")) l = binary(Expr::And, std::move(l), parse_not(), line);
    return l;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      int line = cur().line;
      next();
      auto e = std::make_unique<Expr>(Expr::Not, line);
      e->items.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<Expr> cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && look().type == Tok::Name && look().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = std::make_unique<Expr>(Expr::Compare, line);
        cmp->items.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr parse_math1() {
    int line = cur().line;
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      next();
      l = binary(Expr::Binary, std::move(l), parse_concat(), line, op);
    }
    return l;
  }
  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr l = parse_math2();
    if (!is_op("~")) return l;
    auto e = std::make_unique<Expr>(Expr::Concat, line);
    e->items.push_back(std::move(l));
    while (skip_op("~")) e->items.push_back(parse_math2());
    return e;
  }
  ExprPtr parse_math2() {
    int line = cur().line;
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      next();
      l = binary(Expr::Binary, std::move(l), parse_pow(), line, op);
    }
    return l;
  }
  ExprPtr parse_pow() {
    int line = cur().line;
    ExprPtr l = parse_unary(true);
    while (skip_op("**")) l = binary(Expr::Binary, std::move(l), parse_unary(true), line, "**");
    return l;
  }
  ExprPtr parse_unary(bool with_filter) {
    int line = cur().line;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      bool neg = cur().text == "-";
      next();
      node = std::make_unique<Expr>(neg ? Expr::Neg : Expr::Pos, line);
      node->items.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& k = cur();
    int line = k.line;
    if (k.type == Tok::Name) {
      auto e = std::make_unique<Expr>(Expr::Const, line);
      if (k.text == "true" || k.text == "True") e->value = Value::boolean(true);
      else if (k.text == "false" || k.text == "False") e->value = Value::boolean(false);
      else if (k.text == "none" || k.text == "None") e->value = Value::none();
      else {
        e->type = Expr::Name;
        e->name = k.text;
        for (Stmt* m : macro_stack_) {
          if (k.text == "varargs") m->uses_varargs = true;
          if (k.text == "kwargs") m->uses_kwargs = true;
          if (k.text == "caller") m->uses_caller = true;
        }
      }
      next();
      return e;
    }
    if (k.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) {  // adjacent literals concatenate
        s += cur().text;
        next();
      }
      auto e = std::make_unique<Expr>(Expr::Const, line);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (k.type == Tok::Int || k.type == Tok::Float) {
      auto e = std::make_unique<Expr>(Expr::Const, line);
      e->value = k.value;
      next();
      return e;
    }
    if (is_op("(")) {
      next();
      ExprPtr e = parse_tuple(true, true, {});
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      next();
      auto e = std::make_unique<Expr>(Expr::ListLit, line);
      while (!is_op("]")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("]")) break;
        e->items.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      next();
      auto e = std::make_unique<Expr>(Expr::DictLit, line);
      while (!is_op("}")) {
        if (!e->items.empty()) expect_op(",");
        if (is_op("}")) break;
        e->items.push_back(parse_expression(true));
        expect_op(":");
        e->items.push_back(parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    fail_here("unexpected '" + describe(k) + "'");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) node = parse_subscript(std::move(node));
      else if (is_op("(")) node = parse_call(std::move(node));
      else break;
    }
    return node;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) node = parse_filter(std::move(node), false);
      else if (is_name("is")) node = parse_test(std::move(node));
      else if (is_op("(")) node = parse_call(std::move(node));
      else break;
    }
    return node;
  }

  ExprPtr parse_subscript(ExprPtr node) {
    int line = cur().line;
    if (skip_op(".")) {
      const Token& a = cur();
      if (a.type == Tok::Name) {
        auto e = std::make_unique<Expr>(Expr::Getattr, line);
        e->name = a.text;
        e->items.push_back(std::move(node));
        next();
        return e;
      }
      if (a.type != Tok::Int) fail_here("expected name or number");
      auto e = std::make_unique<Expr>(Expr::Getitem, line);
      e->items.push_back(std::move(node));
      auto c = std::make_unique<Expr>(Expr::Const, line);
      c->value = a.value;
      e->items.push_back(std::move(c));
      next();
      return e;
    }
    expect_op("[");
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = std::make_unique<Expr>(Expr::Getitem, line);
    e->items.push_back(std::move(node));
    if (args.size() == 1) {
      e->items.push_back(std::move(args[0]));
    } else {
      auto tup = std::make_unique<Expr>(Expr::TupleLit, line);
      tup->items = std::move(args);
      e->items.push_back(std::move(tup));
    }
    return e;
  }

  ExprPtr parse_subscribed() {
    int line = cur().line;
    std::vector<ExprPtr> args;
    if (skip_op(":")) {
      args.push_back(nullptr);
    } else {
      ExprPtr n = parse_expression(true);
      if (!skip_op(":")) return n;
      args.push_back(std::move(n));
    }
    if (is_op(":")) args.push_back(nullptr);
    else if (!is_op("]") && !is_op(",")) args.push_back(parse_expression(true));
    else args.push_back(nullptr);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) args.push_back(parse_expression(true));
      else args.push_back(nullptr);
    } else {
      args.push_back(nullptr);
    }
    auto e = std::make_unique<Expr>(Expr::Slice, line);
    e->items = std::move(args);
    return e;
  }

  void parse_call_args(Expr& e) {
    int line = cur().line;
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*")) {
        next();
        if (e.dyn_args || e.dyn_kwargs) fail(name_, line, "invalid syntax for function call expression");
        e.dyn_args = parse_expression(true);
      } else if (is_op("**")) {
        next();
        if (e.dyn_kwargs) fail(name_, line, "invalid syntax for function call expression");
        e.dyn_kwargs = parse_expression(true);
      } else if (cur().type == Tok::Name && look().type == Tok::Op && look().text == "=") {
        if (e.dyn_kwargs) fail(name_, line, "invalid syntax for function call expression");
        std::string key = cur().text;
        next();
        next();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (e.dyn_args || e.dyn_kwargs || !e.kwargs.empty()) fail(name_, line, "invalid syntax for function call expression");
        e.items.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = std::make_unique<Expr>(Expr::Call, cur().line);
    e->items.push_back(std::move(node));
    parse_call_args(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      int line = cur().line;
      std::string name = expect_name();
      while (skip_op(".")) name += "." + expect_name();
      auto e = std::make_unique<Expr>(Expr::Filter, line);
      e->name = name;
      e->items.push_back(std::move(node));
      if (is_op("(")) parse_call_args(*e);
      node = std::move(e);
      start_inline = false;
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    int line = cur().line;
    next();  // is
    bool negated = skip_name("not");
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    auto e = std::make_unique<Expr>(Expr::Test, line);
    e->name = name;
    e->negated = negated;
    e->items.push_back(std::move(node));
    const Token& k = cur();
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((k.type == Tok::Name || k.type == Tok::String || k.type == Tok::Int || k.type == Tok::Float ||
                (k.type == Tok::Op && (k.text == "(" || k.text == "[" || k.text == "{"))) &&
               !(k.type == Tok::Name && (k.text == "else" || k.text == "or" || k.text == "and"))) {
      if (is_name("is")) fail_here("you cannot chain multiple tests with is");
      e->items.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }
};

// jinja2 rejects an unknown filter or test when it compiles the template, except inside an if
// statement or a conditional expression (a "soft" frame, reset by loops, macros and other blocks),
// where it fails only if reached. The same rule, on the tree.
struct NameChecker {
  const std::string& name;
  void expr(const Expr* e, bool soft) {
    if (!e) return;
    if (e->type == Expr::CondExpr) soft = true;
    if (e->type == Expr::Filter && !has_filter(e->name) && !soft) {
      if (unsupported_filter(e->name)) fail(name, e->line, "unsupported feature: the filter '" + e->name + "'");
      fail(name, e->line, "no filter named '" + e->name + "'");
    }
    if (e->type == Expr::Test && !has_test(e->name) && !soft) fail(name, e->line, "no test named '" + e->name + "'");
    for (const auto& x : e->items) expr(x.get(), soft);
    for (const auto& kv : e->kwargs) expr(kv.second.get(), soft);
    expr(e->dyn_args.get(), soft);
    expr(e->dyn_kwargs.get(), soft);
  }
  void body(const Body& b, bool soft) {
    for (const auto& s : b) stmt(*s, soft);
  }
  void stmt(const Stmt& s, bool soft) {
    switch (s.type) {
      case Stmt::If:
        for (const auto& [t, b] : s.branches) {
          expr(t.get(), true);
          body(b, true);
        }
        body(s.else_body, true);
        return;
      case Stmt::For:
        expr(s.expr.get(), soft);
        expr(s.cond.get(), false);
        body(s.body, false);
        body(s.else_body, false);
        return;
      case Stmt::Macro:
      case Stmt::CallBlock:
        for (const auto& p : s.params) expr(p.def.get(), false);
        expr(s.expr.get(), soft);
        body(s.body, false);
        return;
      case Stmt::With:
        for (const auto& a : s.assigns) expr(a.second.get(), soft);
        body(s.body, false);
        return;
      default:  // Print, Set, and the blocks with bodies (set block, filter block, generation)
        expr(s.expr.get(), soft);
        body(s.body, false);
    }
  }
};

}  // namespace

Template::Template(std::string_view source, std::string name) : name_(std::move(name)) {
  std::vector<Token> toks = Lexer(source, name_).run();
  body_ = std::make_shared<std::vector<std::unique_ptr<ast::Stmt>>>(Parser(std::move(toks), name_).parse_template());
  NameChecker{name_}.body(*body_, false);
}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

}  // namespace lmlab::jinja
