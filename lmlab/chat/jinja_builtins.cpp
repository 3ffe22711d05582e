// Builtins of the Jinja engine: jinja2's filters and tests, the str/dict/list methods templates
// call, and the globals of transformers' environment (range, dict, namespace, cycler, joiner,
// raise_exception, strftime_now). Each follows the Python function it mirrors (jinja2/filters.py,
// jinja2/tests.py, Python's str methods), arguments by position or keyword.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>

#include "lmlab/chat/jinja.h"
#include "lmlab/chat/jinja_interp.h"

namespace lmlab::jinja {
namespace {

// ---- arguments ----

// Binds a call's arguments to named parameters, Python style.
class Params {
 public:
  Params(std::string what, Args& a, std::vector<const char*> names) : what_(std::move(what)), vals_(names.size()) {
    if (a.pos.size() > names.size())
      throw EvalError(what_ + " takes at most " + std::to_string(names.size()) + " argument(s) (" +
                      std::to_string(a.pos.size()) + " given)");
    for (size_t k = 0; k < a.pos.size(); ++k) vals_[k] = a.pos[k];
    for (auto& kv : a.kw) {
      const std::string& key = kv.first;
      const Value& v = kv.second;
      auto it = std::find_if(names.begin(), names.end(), [&](const char* n) { return key == n; });
      if (it == names.end()) throw EvalError(what_ + " got an unexpected keyword argument '" + key + "'");
      size_t k = size_t(it - names.begin());
      if (vals_[k]) throw EvalError(what_ + " got multiple values for argument '" + key + "'");
      vals_[k] = v;
    }
  }
  bool has(size_t k) const { return vals_[k].has_value(); }
  Value get(size_t k, Value def = Value::none()) const { return vals_[k] ? *vals_[k] : def; }
  int64_t get_int(size_t k, int64_t def) const {
    if (!vals_[k]) return def;
    if (!vals_[k]->is_int()) throw EvalError(what_ + ": expected an integer, got " + vals_[k]->type_name());
    return vals_[k]->as_int();
  }
  bool get_bool(size_t k, bool def) const { return vals_[k] ? vals_[k]->truthy() : def; }
  std::string get_str(size_t k, const std::string& def) const {
    if (!vals_[k]) return def;
    if (!vals_[k]->is_string()) throw EvalError(what_ + ": expected a string, got " + vals_[k]->type_name());
    return vals_[k]->s;
  }
  std::optional<std::string> get_opt_str(size_t k) const {
    if (!vals_[k] || vals_[k]->is_none()) return std::nullopt;
    return get_str(k, "");
  }

 private:
  std::string what_;
  std::vector<std::optional<Value>> vals_;
};

// The start and end arguments of str.find/startswith/... (Python's slice rules: negative counts
// from the end, both clamped to [0, n]).
std::pair<int64_t, int64_t> py_span(const Params& p, size_t i_start, size_t i_end, int64_t n) {
  int64_t st = p.has(i_start) && !p.get(i_start).is_none() ? p.get_int(i_start, 0) : 0;
  int64_t en = p.has(i_end) && !p.get(i_end).is_none() ? p.get_int(i_end, n) : n;
  if (st < 0) st = std::max<int64_t>(0, st + n);
  if (en < 0) en = std::max<int64_t>(0, en + n);
  return {std::min(st, n), std::min(en, n)};
}

void no_args(const std::string& what, const Args& a) {
  if (!a.pos.empty() || !a.kw.empty()) throw EvalError(what + " takes no arguments");
}

// ---- Unicode case (the scripts templates carry: Latin, Greek, Cyrillic) ----

uint32_t cp_upper(uint32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
    bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_lower ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
    return c;
  }
  if (c >= 0x1C4 && c <= 0x1CC) return c - (c - 0x1C4) % 3;  // DŽ Dž dž, LJ Lj lj, NJ Nj nj
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}
uint32_t cp_lower(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
    bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_lower ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
    return c;
  }
  if (c >= 0x1C4 && c <= 0x1CC) return c + 2 - (c - 0x1C4) % 3;
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}
bool cp_cased(uint32_t c) { return cp_upper(c) != c || cp_lower(c) != c; }
bool cp_is_lower(uint32_t c) { return cp_upper(c) != c; }
bool cp_is_upper(uint32_t c) { return cp_lower(c) != c; }
// Letters and digits as Python's \w and str.isalnum see them (non-ASCII letters approximated as
// every code point above U+00BF that is not whitespace or general punctuation).
bool cp_alpha(uint32_t c) {
  if (c < 0x80) return std::isalpha(int(c));
  if (c == 0xAA || c == 0xB5 || c == 0xBA) return true;
  if (c < 0xC0 || c == 0xD7 || c == 0xF7) return false;
  if (is_py_space(c)) return false;
  if (c >= 0x2000 && c <= 0x2BFF) return false;  // punctuation, symbols, arrows
  if (c >= 0x3000 && c <= 0x303F) return false;  // CJK punctuation
  if (c >= 0xFF00 && c <= 0xFF0F) return false;
  if (c >= 0x1F000) return false;  // emoji and symbols
  return true;
}
bool cp_digit(uint32_t c) { return c >= '0' && c <= '9'; }

std::string map_case(const std::string& s, uint32_t (*f)(uint32_t)) {
  std::string out;
  for (uint32_t c : utf8_decode(s)) {
    // the special casings of Python's str.upper/lower that change the length
    if (f == cp_upper && (c == 0xDF || (c >= 0xFB00 && c <= 0xFB02))) {
      out += c == 0xDF ? "SS" : c == 0xFB00 ? "FF" : c == 0xFB01 ? "FI" : "FL";
      continue;
    }
    if (f == cp_lower && c == 0x130) {
      out += "i\xcc\x87";  // i + U+0307 COMBINING DOT ABOVE
      continue;
    }
    utf8_append(out, (c >= 0xDC80 && c <= 0xDCFF) ? c : f(c));
  }
  return out;
}

std::string py_capitalize(const std::string& s) {
  auto cps = utf8_decode(s);
  std::string out;
  for (size_t k = 0; k < cps.size(); ++k) utf8_append(out, k == 0 ? cp_upper(cps[k]) : cp_lower(cps[k]));
  return out;
}

// Python's str.title(): a cased character after an uncased one is uppercased, others lowercased.
std::string py_title(const std::string& s) {
  std::string out;
  bool prev_cased = false;
  for (uint32_t c : utf8_decode(s)) {
    bool cased = cp_cased(c);
    utf8_append(out, cased ? (prev_cased ? cp_lower(c) : cp_upper(c)) : c);
    prev_cased = cased;
  }
  return out;
}

// jinja2's title filter: words begin after runs of [-\s({\[<]; each word's first character
// uppercased, the rest lowercased.
std::string jinja_title(const std::string& s) {
  auto cps = utf8_decode(s);
  std::string out;
  bool at_start = true;
  for (uint32_t c : cps) {
    bool sep = c == '-' || is_py_space(c) || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      utf8_append(out, c);
      at_start = true;
    } else {
      utf8_append(out, at_start ? cp_upper(c) : cp_lower(c));
      at_start = false;
    }
  }
  return out;
}

// ---- str methods ----

std::vector<uint32_t> strip_set(const Value& chars) {
  if (chars.is_none() || chars.is_undefined()) return {};
  if (!chars.is_string()) throw EvalError("strip arg must be None or str");
  return utf8_decode(chars.s);
}

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto cps = utf8_decode(s);
  auto set = strip_set(chars);
  bool ws = chars.is_none() || chars.is_undefined();
  auto in = [&](uint32_t c) { return ws ? is_py_space(c) : std::find(set.begin(), set.end(), c) != set.end(); };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && in(cps[b])) ++b;
  if (right)
    while (e > b && in(cps[e - 1])) --e;
  return utf8_encode(cps, b, e);
}

List py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    auto cps = utf8_decode(s);
    size_t i = 0, n = cps.size();
    while (true) {
      while (i < n && is_py_space(cps[i])) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        size_t e = n;
        while (e > i && is_py_space(cps[e - 1])) --e;
        out.push_back(Value::string(utf8_encode(cps, i, e)));
        break;
      }
      size_t j = i;
      while (j < n && !is_py_space(cps[j])) ++j;
      out.push_back(Value::string(utf8_encode(cps, i, j)));
      i = j;
    }
    return out;
  }
  if (!sep.is_string()) throw EvalError("must be str or None, not " + sep.type_name());
  if (sep.s.empty()) throw EvalError("empty separator");
  size_t pos = 0;
  while (true) {
    size_t f = (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) ? std::string::npos : s.find(sep.s, pos);
    if (f == std::string::npos) {
      out.push_back(Value::string(s.substr(pos)));
      break;
    }
    out.push_back(Value::string(s.substr(pos, f - pos)));
    pos = f + sep.s.size();
  }
  return out;
}

List py_rsplit(const std::string& s, const Value& sep, int64_t maxsplit) {
  if (maxsplit < 0) return py_split(s, sep, -1);
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    auto cps = utf8_decode(s);
    int64_t e = int64_t(cps.size());
    while (true) {
      while (e > 0 && is_py_space(cps[size_t(e - 1)])) --e;
      if (e <= 0) break;
      if (int64_t(out.size()) == maxsplit) {
        size_t b = 0;
        while (int64_t(b) < e && is_py_space(cps[b])) ++b;
        out.push_back(Value::string(utf8_encode(cps, b, size_t(e))));
        break;
      }
      int64_t b = e;
      while (b > 0 && !is_py_space(cps[size_t(b - 1)])) --b;
      out.push_back(Value::string(utf8_encode(cps, size_t(b), size_t(e))));
      e = b;
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
  if (!sep.is_string()) throw EvalError("must be str or None, not " + sep.type_name());
  if (sep.s.empty()) throw EvalError("empty separator");
  size_t end = s.size();
  while (true) {
    size_t f = std::string::npos;
    if (int64_t(out.size()) < maxsplit && end >= sep.s.size()) f = s.rfind(sep.s, end - sep.s.size());
    if (f == std::string::npos) {
      out.push_back(Value::string(s.substr(0, end)));
      break;
    }
    out.push_back(Value::string(s.substr(f + sep.s.size(), end - f - sep.s.size())));
    if (f == 0 && false) break;
    end = f;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

List py_splitlines(const std::string& s, bool keepends) {
  auto cps = utf8_decode(s);
  List out;
  size_t i = 0, b = 0, n = cps.size();
  auto is_break = [](uint32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
  };
  while (i < n) {
    if (is_break(cps[i])) {
      size_t e = i + 1;
      if (cps[i] == '\r' && e < n && cps[e] == '\n') ++e;
      out.push_back(Value::string(utf8_encode(cps, b, keepends ? e : i)));
      i = b = e;
    } else {
      ++i;
    }
  }
  if (b < n) out.push_back(Value::string(utf8_encode(cps, b, n)));
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& nw, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts `nw` between every character and at both ends
    auto cps = utf8_decode(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || done < count) {
        out += nw;
        ++done;
      }
      if (k < cps.size()) out += utf8_encode(cps, k, k + 1);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out += s.substr(pos, f - pos) + nw;
    pos = f + old.size();
    ++done;
  }
  return out + s.substr(pos);
}

// Python's format(value, spec): [[fill]align][sign][#][0][width][,|_][.precision][type].
std::string format_spec(const Value& v, const std::string& spec) {
  if (spec.empty()) return to_str(v);
  auto cps = utf8_decode(spec);
  size_t p = 0;
  uint32_t fill = ' ';
  char align = 0, sign = '-', group = 0, type = 0;
  bool alt = false, zero = false;
  auto is_align = [](uint32_t c) { return c == '<' || c == '>' || c == '=' || c == '^'; };
  if (cps.size() >= 2 && is_align(cps[1])) {
    fill = cps[0];
    align = char(cps[1]);
    p = 2;
  } else if (is_align(cps[0])) {
    align = char(cps[0]);
    p = 1;
  }
  if (p < cps.size() && (cps[p] == '+' || cps[p] == '-' || cps[p] == ' ')) sign = char(cps[p++]);
  if (p < cps.size() && cps[p] == '#') alt = true, ++p;
  if (p < cps.size() && cps[p] == '0') zero = true, ++p;
  int64_t width = 0, prec = -1;
  while (p < cps.size() && cps[p] >= '0' && cps[p] <= '9') width = width * 10 + (cps[p++] - '0');
  if (p < cps.size() && (cps[p] == ',' || cps[p] == '_')) group = char(cps[p++]);
  if (p < cps.size() && cps[p] == '.') {
    ++p;
    prec = 0;
    if (p >= cps.size() || cps[p] < '0' || cps[p] > '9') throw EvalError("Format specifier missing precision");
    while (p < cps.size() && cps[p] >= '0' && cps[p] <= '9') prec = prec * 10 + (cps[p++] - '0');
  }
  if (p < cps.size()) type = char(cps[p++]);
  if (p != cps.size()) throw EvalError("Invalid format specifier '" + spec + "'");
  std::string body, prefix;
  bool numeric = v.is_number();
  if (v.is_string() || (!numeric && (type == 0 || type == 's'))) {
    if (type && type != 's') throw EvalError(std::string("Unknown format code '") + type + "' for object of type 'str'");
    if (sign != '-' || alt || group) throw EvalError("Sign, alternate form or grouping not allowed in string format specifier");
    std::string x = to_str(v);
    auto xc = utf8_decode(x);
    body = prec >= 0 && size_t(prec) < xc.size() ? utf8_encode(xc, 0, size_t(prec)) : x;
    if (!align) align = '<';
  } else if (numeric) {
    bool as_int = v.kind != Kind::Float && (type == 0 || std::strchr("dxXobnc", type));
    if (as_int) {
      if (prec >= 0) throw EvalError("Precision not allowed in integer format specifier");
      int64_t n = v.as_int();
      uint64_t mag = n < 0 ? uint64_t(0) - uint64_t(n) : uint64_t(n);
      int base = type == 'x' || type == 'X' ? 16 : type == 'o' ? 8 : type == 'b' ? 2 : 10;
      if (type == 'c') {
        utf8_append(body, uint32_t(mag));
      } else {
        do {
          int d = int(mag % uint64_t(base));
          body.insert(body.begin(), char(d < 10 ? '0' + d : (type == 'X' ? 'A' : 'a') + d - 10));
          mag /= uint64_t(base);
        } while (mag);
        if (alt && base != 10) prefix = base == 16 ? (type == 'X' ? "0X" : "0x") : base == 8 ? "0o" : "0b";
      }
      if (n < 0) prefix = "-" + prefix;
      else if (sign == '+') prefix = "+" + prefix;
      else if (sign == ' ') prefix = " " + prefix;
    } else {
      if (type && !std::strchr("eEfFgG%", type)) throw EvalError(std::string("Unknown format code '") + type + "' for object of type 'float'");
      double d = v.as_double();
      bool neg = std::signbit(d);
      double m = std::fabs(d);
      if (type == 0 && prec < 0) {
        body = float_repr(m);
      } else {
        char t = type ? type : 'g';
        int pr = int(prec >= 0 ? prec : 6);
        if (t == '%') m *= 100;
        char buf[512];
        std::snprintf(buf, sizeof buf, (std::string("%") + (alt ? "#" : "") + ".*" + (t == '%' ? 'f' : t)).c_str(), pr, m);
        body = buf;
        if (type == 0 && body.find_first_of(".e") == std::string::npos && std::isfinite(m)) body += ".0";
        if (t == '%') body += "%";
      }
      if (neg) prefix = "-";
      else if (sign == '+') prefix = "+";
      else if (sign == ' ') prefix = " ";
    }
    if (group) {
      size_t end = body.find_first_of(".eE%");
      if (end == std::string::npos) end = body.size();
      std::string ip = body.substr(0, end), grouped;
      int every = (type == 'x' || type == 'X' || type == 'o' || type == 'b') ? 4 : 3;
      for (size_t k = 0; k < ip.size(); ++k) {
        if (k && (ip.size() - k) % size_t(every) == 0) grouped += group;
        grouped += ip[k];
      }
      body = grouped + body.substr(end);
    }
    if (!align) align = zero ? '=' : '>';
    if (zero && fill == ' ' && (cps.size() < 2 || !is_align(cps[1]))) fill = '0';
  } else {
    throw EvalError("unsupported format string passed to " + v.type_name() + ".__format__");
  }
  std::string fill_s;
  utf8_append(fill_s, fill);
  int64_t len = int64_t(utf8_length(prefix) + utf8_length(body));
  if (len >= width) return prefix + body;
  int64_t pad = width - len;
  std::string pads;
  for (int64_t k = 0; k < pad; ++k) pads += fill_s;
  switch (align) {
    case '<': return prefix + body + pads;
    case '=': return prefix + pads + body;
    case '^': {
      std::string l, r;
      for (int64_t k = 0; k < pad / 2; ++k) l += fill_s;
      for (int64_t k = pad / 2; k < pad; ++k) r += fill_s;
      return l + prefix + body + r;
    }
    default: return pads + prefix + body;
  }
}

// Python's str.format: {}, {0}, {name}, {{ and }}, conversions !r !s !a and format specs
// (attribute and index lookups inside a field are not supported).
std::string py_format(const std::string& fmt, const Args& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (c == '}') throw EvalError("Single '}' encountered in format string");
    if (c != '{') {
      out += c;
      continue;
    }
    size_t e = fmt.find('}', i);
    if (e == std::string::npos) throw EvalError("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, e - i - 1), spec, conv;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    size_t bang = field.find('!');
    if (bang != std::string::npos) {
      conv = field.substr(bang + 1);
      field = field.substr(0, bang);
      if (conv != "r" && conv != "s" && conv != "a") throw EvalError("Unknown conversion specifier " + conv);
    }
    Value v;
    if (field.empty()) {
      if (auto_idx >= a.pos.size()) throw EvalError("Replacement index " + std::to_string(auto_idx) + " out of range for positional args tuple");
      v = a.pos[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return std::isdigit(uint8_t(d)); })) {
      size_t k = std::stoul(field);
      if (k >= a.pos.size()) throw EvalError("Replacement index " + field + " out of range for positional args tuple");
      v = a.pos[k];
    } else {
      auto it = std::find_if(a.kw.begin(), a.kw.end(), [&](const auto& p) { return p.first == field; });
      if (it == a.kw.end()) throw EvalError("KeyError: '" + field + "'");
      v = it->second;
    }
    if (conv == "r" || conv == "a") v = Value::string(to_repr(v));
    else if (conv == "s") v = Value::string(to_str(v));
    std::string s = format_spec(v, spec);
    out += s;
    i = e;
  }
  return out;
}

bool str_test(const std::string& s, bool (*pred)(uint32_t)) {
  auto cps = utf8_decode(s);
  if (cps.empty()) return false;
  for (uint32_t c : cps)
    if (!pred(c)) return false;
  return true;
}

Value bound(const std::string& name, std::function<Value(Args&)> fn) {
  auto c = std::make_shared<Callable>();
  c->name = name;
  c->fn = std::move(fn);
  return Value::callable(std::move(c));
}

std::optional<Value> str_method(const Value& self, std::string_view name) {
  const std::string s = self.s;
  std::string nm(name);
  std::string what = "str." + nm + "()";
  auto prefix_test = [s, what](Args& a, bool ends) -> Value {
    Params p(what, a, {"prefix", "start", "end"});
    Value x = p.get(0);
    auto cps = utf8_decode(s);
    const auto span = py_span(p, 1, 2, int64_t(cps.size()));
    const int64_t st = span.first, en = span.second;  // plain variables: C++20 lambdas cannot capture bindings on clang 14
    std::string sub = st <= en ? utf8_encode(cps, size_t(st), size_t(en)) : std::string();
    auto one = [&](const Value& v) {
      if (!v.is_string()) throw EvalError(what + " arg must be str or a tuple of str, not " + v.type_name());
      if (st > en) return false;
      return ends ? (sub.size() >= v.s.size() && sub.compare(sub.size() - v.s.size(), v.s.size(), v.s) == 0)
                  : sub.compare(0, v.s.size(), v.s) == 0;
    };
    if (x.kind == Kind::Tuple) {
      for (const auto& y : *x.list)
        if (one(y)) return Value::boolean(true);
      return Value::boolean(false);
    }
    return Value::boolean(one(x));
  };
  if (nm == "startswith") return bound(what, [prefix_test](Args& a) { return prefix_test(a, false); });
  if (nm == "endswith") return bound(what, [prefix_test](Args& a) { return prefix_test(a, true); });
  if (nm == "strip" || nm == "lstrip" || nm == "rstrip")
    return bound(what, [s, nm, what](Args& a) {
      Params p(what, a, {"chars"});
      return Value::string(py_strip(s, p.get(0), nm != "rstrip", nm != "lstrip"));
    });
  if (nm == "split" || nm == "rsplit")
    return bound(what, [s, nm, what](Args& a) {
      Params p(what, a, {"sep", "maxsplit"});
      int64_t m = p.get_int(1, -1);
      return Value::make_list(nm == "split" ? py_split(s, p.get(0), m) : py_rsplit(s, p.get(0), m));
    });
  if (nm == "splitlines")
    return bound(what, [s, what](Args& a) {
      Params p(what, a, {"keepends"});
      return Value::make_list(py_splitlines(s, p.get_bool(0, false)));
    });
  if (nm == "upper" || nm == "lower" || nm == "casefold" || nm == "title" || nm == "capitalize" || nm == "swapcase")
    return bound(what, [s, nm, what](Args& a) {
      no_args(what, a);
      if (nm == "upper") return Value::string(map_case(s, cp_upper));
      if (nm == "lower" || nm == "casefold") return Value::string(map_case(s, cp_lower));
      if (nm == "title") return Value::string(py_title(s));
      if (nm == "capitalize") return Value::string(py_capitalize(s));
      std::string out;
      for (uint32_t c : utf8_decode(s)) utf8_append(out, cp_is_upper(c) ? cp_lower(c) : cp_upper(c));
      return Value::string(out);
    });
  if (nm == "replace")
    return bound(what, [s, what](Args& a) {
      Params p(what, a, {"old", "new", "count"});
      return Value::string(py_replace(s, p.get_str(0, ""), p.get_str(1, ""), p.get_int(2, -1)));
    });
  if (nm == "find" || nm == "rfind" || nm == "index" || nm == "rindex" || nm == "count")
    return bound(what, [s, nm, what](Args& a) {
      Params p(what, a, {"sub", "start", "end"});
      std::string sub = p.get_str(0, "");
      auto cps = utf8_decode(s);
      auto [st, en] = py_span(p, 1, 2, int64_t(cps.size()));
      if (st > en) return Value::integer(nm == "count" ? 0 : -1);
      std::string hay = utf8_encode(cps, size_t(st), size_t(en));
      if (nm == "count") {
        if (sub.empty()) return Value::integer(int64_t(utf8_length(hay)) + 1);
        int64_t c = 0;
        for (size_t pos = hay.find(sub); pos != std::string::npos; pos = hay.find(sub, pos + sub.size())) ++c;
        return Value::integer(c);
      }
      size_t f = (nm == "find" || nm == "index") ? hay.find(sub) : hay.rfind(sub);
      if (f == std::string::npos) {
        if (nm == "index" || nm == "rindex") throw EvalError("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(st + int64_t(utf8_length(hay.substr(0, f))));
    });
  if (nm == "join")
    return bound(what, [s, what](Args& a) {
      Params p(what, a, {"iterable"});
      Value it = p.get(0);
      if (!it.is_listlike() && it.kind != Kind::Dict && !it.is_string())
        throw EvalError("can only join an iterable");
      std::vector<Value> items;
      if (it.is_string()) {
        auto cps = utf8_decode(it.s);
        for (size_t k = 0; k < cps.size(); ++k) items.push_back(Value::string(utf8_encode(cps, k, k + 1)));
      } else if (it.kind == Kind::Dict) {
        for (const auto& [k, v] : it.dict->items) items.push_back(k);
      } else {
        items = *it.list;
      }
      std::string out;
      for (size_t k = 0; k < items.size(); ++k) {
        if (!items[k].is_string())
          throw EvalError("sequence item " + std::to_string(k) + ": expected str instance, " + items[k].type_name() + " found");
        if (k) out += s;
        out += items[k].s;
      }
      return Value::string(out);
    });
  if (nm == "format") return bound(what, [s](Args& a) { return Value::string(py_format(s, a)); });
  if (nm == "isdigit" || nm == "isnumeric" || nm == "isdecimal")
    return bound(what, [s, what](Args& a) { no_args(what, a); return Value::boolean(str_test(s, cp_digit)); });
  if (nm == "isalpha")
    return bound(what, [s, what](Args& a) { no_args(what, a); return Value::boolean(str_test(s, cp_alpha)); });
  if (nm == "isalnum")
    return bound(what, [s, what](Args& a) {
      no_args(what, a);
      return Value::boolean(str_test(s, [](uint32_t c) { return cp_alpha(c) || cp_digit(c); }));
    });
  if (nm == "isspace")
    return bound(what, [s, what](Args& a) { no_args(what, a); return Value::boolean(str_test(s, is_py_space)); });
  if (nm == "islower" || nm == "isupper")
    return bound(what, [s, nm, what](Args& a) {
      no_args(what, a);
      bool any = false, ok = true;
      for (uint32_t c : utf8_decode(s)) {
        if (!cp_cased(c)) continue;
        any = true;
        if (nm == "islower" ? cp_is_upper(c) : cp_is_lower(c)) ok = false;
      }
      return Value::boolean(any && ok);
    });
  if (nm == "expandtabs")
    return bound(what, [s, what](Args& a) {
      Params p(what, a, {"tabsize"});
      int64_t ts = p.get_int(0, 8), col = 0;
      std::string out;
      for (uint32_t c : utf8_decode(s)) {
        if (c == '\t') {
          int64_t n = ts > 0 ? ts - col % ts : 0;
          out.append(size_t(n), ' ');
          col += n;
        } else {
          utf8_append(out, c);
          col = (c == '\n' || c == '\r') ? 0 : col + 1;
        }
      }
      return Value::string(out);
    });
  if (nm == "istitle")
    return bound(what, [s, what](Args& a) {
      no_args(what, a);
      bool prev_cased = false, any = false;
      for (uint32_t c : utf8_decode(s)) {
        if (cp_is_upper(c)) {
          if (prev_cased) return Value::boolean(false);
          prev_cased = any = true;
        } else if (cp_is_lower(c)) {
          if (!prev_cased) return Value::boolean(false);
          prev_cased = any = true;
        } else {
          prev_cased = false;
        }
      }
      return Value::boolean(any);
    });
  if (nm == "removeprefix" || nm == "removesuffix")
    return bound(what, [s, nm, what](Args& a) {
      Params p(what, a, {"affix"});
      std::string x = p.get_str(0, "");
      if (nm == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value::string(s.substr(x.size()));
      if (nm == "removesuffix" && !x.empty() && s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0)
        return Value::string(s.substr(0, s.size() - x.size()));
      return Value::string(s);
    });
  if (nm == "partition" || nm == "rpartition")
    return bound(what, [s, nm, what](Args& a) {
      Params p(what, a, {"sep"});
      std::string x = p.get_str(0, "");
      if (x.empty()) throw EvalError("empty separator");
      size_t f = nm == "partition" ? s.find(x) : s.rfind(x);
      if (f == std::string::npos)
        return nm == "partition" ? Value::make_tuple({Value::string(s), Value::string(""), Value::string("")})
                                 : Value::make_tuple({Value::string(""), Value::string(""), Value::string(s)});
      return Value::make_tuple({Value::string(s.substr(0, f)), Value::string(x), Value::string(s.substr(f + x.size()))});
    });
  if (nm == "center" || nm == "ljust" || nm == "rjust" || nm == "zfill")
    return bound(what, [s, nm, what](Args& a) {
      Params p(what, a, {"width", "fillchar"});
      int64_t w = p.get_int(0, 0);
      std::string fill = nm == "zfill" ? "0" : p.get_str(1, " ");
      int64_t len = int64_t(utf8_length(s));
      if (w <= len) return Value::string(s);
      int64_t pad = w - len, l;
      if (nm == "ljust") l = 0;
      else if (nm == "rjust" || nm == "zfill") l = pad;
      else l = pad / 2 + (pad & w & 1);
      std::string out;
      for (int64_t k = 0; k < l; ++k) out += fill;
      if (nm == "zfill" && !s.empty() && (s[0] == '-' || s[0] == '+')) out = s.substr(0, 1) + out + s.substr(1);
      else out += s;
      for (int64_t k = l; k < pad; ++k) out += fill;
      return Value::string(out);
    });
  return std::nullopt;
}

std::optional<Value> dict_method(const Value& self, std::string_view name) {
  auto d = self.dict;
  std::string what = "dict." + std::string(name) + "()";
  if (name == "items")
    return bound(what, [d, what](Args& a) {
      no_args(what, a);
      List l;
      for (const auto& [k, v] : d->items) l.push_back(Value::make_tuple({k, v}));
      return Value::make_view(std::move(l), "dict_items");
    });
  if (name == "keys" || name == "values")
    return bound(what, [d, what, keys = name == "keys"](Args& a) {
      no_args(what, a);
      List l;
      for (const auto& [k, v] : d->items) l.push_back(keys ? k : v);
      return Value::make_view(std::move(l), keys ? "dict_keys" : "dict_values");
    });
  if (name == "get")
    return bound(what, [d, what](Args& a) {
      Params p(what, a, {"key", "default"});
      if (const Value* v = d->find(p.get(0))) return *v;
      return p.get(1);
    });
  if (name == "copy")
    return bound(what, [self, what](Args& a) { no_args(what, a); return self; });
  return std::nullopt;
}

std::optional<Value> list_method(const Value& self, std::string_view name) {
  auto l = self.list;
  std::string what = self.type_name() + "." + std::string(name) + "()";
  if (name == "index")
    return bound(what, [l, what](Args& a) {
      Params p(what, a, {"value"});
      Value x = p.get(0);
      for (size_t k = 0; k < l->size(); ++k)
        if (equal((*l)[k], x)) return Value::integer(int64_t(k));
      throw EvalError(to_repr(x) + " is not in list");
    });
  if (name == "count")
    return bound(what, [l, what](Args& a) {
      Params p(what, a, {"value"});
      int64_t c = 0;
      for (const auto& y : *l) c += equal(y, p.get(0));
      return Value::integer(c);
    });
  if (name == "copy" && self.kind == Kind::List)
    return bound(what, [self, what](Args& a) { no_args(what, a); return self; });
  return std::nullopt;
}

// ---- filters ----

using FilterFn = Value (*)(Interp&, Value, Args&);

std::string soft_str(const Value& v) { return to_str(v); }

int64_t py_len(const Value& v) {
  switch (v.kind) {
    case Kind::String: return int64_t(utf8_length(v.s));
    case Kind::List:
    case Kind::Tuple:
      if (v.is_iterator()) throw EvalError("object of type '" + v.view + "' has no len()");
      return int64_t(v.list->size());
    case Kind::Dict: return int64_t(v.dict->items.size());
    case Kind::Undefined: return 0;
    case Kind::Object:
      if (auto ns = std::dynamic_pointer_cast<Namespace>(v.obj)) return int64_t(ns->attrs.items.size());
      [[fallthrough]];
    default: throw EvalError("object of type '" + v.type_name() + "' has no len()");
  }
}

// jinja2's make_attrgetter: "a.b.0" walks items/attributes; a missing part gives Undefined.
Value attr_path(Interp& in, Value v, const Value& attribute) {
  if (attribute.is_int()) return in.getitem(v, attribute);
  if (!attribute.is_string()) return in.getitem(v, attribute);
  size_t pos = 0;
  const std::string& a = attribute.s;
  while (true) {
    size_t dot = a.find('.', pos);
    std::string part = a.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    Value key = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(uint8_t(c)); })
                    ? Value::integer(std::stoll(part))
                    : Value::string(part);
    if (v.is_undefined()) return v;
    v = in.getitem(v, key);
    if (dot == std::string::npos) return v;
    pos = dot + 1;
  }
}

Value lower_if_str(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(map_case(v.s, cp_lower));
  return v;
}

Value f_abs(Interp&, Value v, Args& a) {
  no_args("abs", a);
  if (v.kind == Kind::Float) return Value::number(std::fabs(v.f));
  if (v.is_int()) return Value::integer(std::llabs(v.as_int()));
  throw EvalError("bad operand type for abs(): '" + v.type_name() + "'");
}
Value f_attr(Interp&, Value v, Args& a) {
  Params p("attr", a, {"name"});
  std::string name = p.get_str(0, "");
  if (v.kind == Kind::Object)
    if (auto x = v.obj->get_attr(name)) return *x;
  if (is_mutating_method(v, name)) return Value::undefined("access to attribute '" + name + "' of '" + v.type_name() + "' object is unsafe.");
  if (auto m = builtin_method(v, name)) return *m;
  return Value::undefined("'" + v.type_name() + " object' has no attribute '" + name + "'");
}
Value f_batch(Interp& in, Value v, Args& a) {
  Params p("batch", a, {"linecount", "fill_with"});
  int64_t n = p.get_int(0, 1);
  if (n <= 0) throw EvalError("batch: linecount must be positive");
  List out, cur;
  for (auto& x : in.iterate(v)) {
    cur.push_back(x);
    if (int64_t(cur.size()) == n) {
      out.push_back(Value::make_list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (p.has(1) && !p.get(1).is_none())
      while (int64_t(cur.size()) < n) cur.push_back(p.get(1));
    out.push_back(Value::make_list(std::move(cur)));
  }
  return Value::make_view(std::move(out), "generator");
}
Value f_capitalize(Interp&, Value v, Args& a) {
  no_args("capitalize", a);
  return Value::string(py_capitalize(soft_str(v)));
}
Value f_center(Interp&, Value v, Args& a) {
  Params p("center", a, {"width"});
  Args b;
  b.pos.push_back(Value::integer(p.get_int(0, 80)));
  return str_method(Value::string(soft_str(v)), "center")->fn->fn(b);
}
Value f_length(Interp&, Value v, Args& a) {
  no_args("length", a);
  return Value::integer(py_len(v));
}
Value f_default(Interp&, Value v, Args& a) {
  Params p("default", a, {"default_value", "boolean"});
  if (v.is_undefined() || (p.get_bool(1, false) && !v.truthy())) return p.get(0, Value::string(""));
  return v;
}
Value f_dictsort(Interp&, Value v, Args& a) {
  Params p("dictsort", a, {"case_sensitive", "by", "reverse"});
  if (v.kind != Kind::Dict) throw EvalError("dictsort: expected a dict, got " + v.type_name());
  bool cs = p.get_bool(0, false), rev = p.get_bool(2, false);
  std::string by = p.get_str(1, "key");
  if (by != "key" && by != "value") throw EvalError("You can only sort by either \"key\" or \"value\"");
  int pos = by == "key" ? 0 : 1;
  std::vector<std::pair<Value, Value>> items = v.dict->items;
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    Value kx = lower_if_str(pos ? x.second : x.first, cs), ky = lower_if_str(pos ? y.second : y.first, cs);
    return rev ? less(ky, kx) : less(kx, ky);
  });
  List out;
  for (auto& [k, x] : items) out.push_back(Value::make_tuple({k, x}));
  return Value::make_list(std::move(out));
}
}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}
namespace {

Value f_escape(Interp&, Value v, Args& a) {
  no_args("escape", a);
  if (v.is_string() && v.markup) return v;
  Value r = Value::string(html_escape(soft_str(v)));
  r.markup = true;
  return r;
}
Value f_forceescape(Interp&, Value v, Args& a) {
  no_args("forceescape", a);
  Value r = Value::string(html_escape(soft_str(v)));
  r.markup = true;
  return r;
}
Value f_first(Interp& in, Value v, Args& a) {
  no_args("first", a);
  auto items = in.iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}
Value f_last(Interp& in, Value v, Args& a) {
  no_args("last", a);
  if (v.view == "generator") throw EvalError("'generator' object is not reversible");
  auto items = in.iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}
std::optional<double> parse_py_float(const std::string& s0) {
  std::string s = py_strip(s0, Value::none(), true, true), t;
  for (char c : s)
    if (c != '_') t += c;
  if (t.empty()) return std::nullopt;
  std::string low = map_case(t, cp_lower);
  if (low == "inf" || low == "+inf" || low == "infinity" || low == "+infinity") return INFINITY;
  if (low == "-inf" || low == "-infinity") return -INFINITY;
  if (low == "nan" || low == "+nan" || low == "-nan") return NAN;
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || low.find('x') != std::string::npos) return std::nullopt;
  return d;
}
Value f_float(Interp&, Value v, Args& a) {
  Params p("float", a, {"default"});
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string())
    if (auto d = parse_py_float(v.s)) return Value::number(*d);
  return p.get(0, Value::number(0.0));
}
Value f_format(Interp&, Value v, Args& a) {
  if (!a.kw.empty() && !a.pos.empty()) throw EvalError("can't handle positional and keyword arguments at the same time");
  if (!a.kw.empty()) {
    Dict d;
    for (auto& [k, x] : a.kw) d.set(Value::string(k), x);
    return Value::string(binary_op("%", Value::string(soft_str(v)), Value::make_dict(std::move(d))).s);
  }
  return Value::string(binary_op("%", Value::string(soft_str(v)), Value::make_tuple(a.pos)).s);
}
// jinja2's groupby: sorted by the attribute, grouped; each group a (grouper, list) pair that also
// answers .grouper and .list (Interp::getattr). Without case_sensitive, strings group ignoring case
// and the grouper is the first item's value.
Value f_groupby(Interp& in, Value v, Args& a) {
  Params p("groupby", a, {"attribute", "default", "case_sensitive"});
  if (!p.has(0)) throw EvalError("groupby: missing the attribute");
  Value attr = p.get(0), def = p.get(1);
  bool cs = p.get_bool(2, false);
  auto raw = [&](const Value& x) {
    Value r = attr_path(in, x, attr);
    return (r.is_undefined() && p.has(1)) ? def : r;
  };
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : in.iterate(v)) keyed.emplace_back(lower_if_str(raw(x), cs), x);
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& x, const auto& y) { return less(x.first, y.first); });
  List out;
  for (size_t k = 0; k < keyed.size();) {
    size_t e = k;
    List group;
    while (e < keyed.size() && equal(keyed[e].first, keyed[k].first)) group.push_back(keyed[e++].second);
    out.push_back(Value::make_tuple({raw(group[0]), Value::make_list(std::move(group))}));
    k = e;
  }
  return Value::make_list(std::move(out));
}
Value f_indent(Interp&, Value v, Args& a) {
  Params p("indent", a, {"width", "first", "blank"});
  std::string ind;
  Value w = p.get(0, Value::integer(4));
  if (w.is_string()) ind = w.s;
  else if (w.is_int()) ind = std::string(size_t(std::max<int64_t>(0, w.as_int())), ' ');
  else throw EvalError("indent: width must be an int or a str");
  bool first = p.get_bool(1, false), blank = p.get_bool(2, false);
  std::string s = soft_str(v) + "\n";
  List lines = py_splitlines(s, false);
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + ind : "") + lines[k].s;
  } else {
    rv = lines.empty() ? "" : lines[0].s;
    for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].s.empty() ? "" : ind) + lines[k].s;
  }
  if (first) rv = ind + rv;
  return Value::string(rv);
}
Value f_int(Interp&, Value v, Args& a) {
  Params p("int", a, {"default", "base"});
  Value def = p.get(0, Value::integer(0));
  int64_t base = p.get_int(1, 10);
  if (v.is_int()) return Value::integer(v.as_int());
  if (v.kind == Kind::Float) {
    if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return def;
    return Value::integer(int64_t(v.f));
  }
  if (v.is_string()) {
    std::string s = py_strip(v.s, Value::none(), true, true), t;
    for (char c : s)
      if (c != '_') t += c;
    if (!t.empty()) {
      // Python's int(s, base) accepts the base's own prefix (0x, 0o, 0b) after an optional sign
      std::string digits = t, sgn;
      if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) sgn = digits.substr(0, 1), digits.erase(0, 1);
      if (digits.size() > 2 && digits[0] == '0') {
        char pfx = char(std::tolower(digits[1]));
        if ((pfx == 'x' && base == 16) || (pfx == 'o' && base == 8) || (pfx == 'b' && base == 2)) digits.erase(0, 2);
      }
      t = sgn + digits;
      errno = 0;
      char* end = nullptr;
      long long x = std::strtoll(t.c_str(), &end, int(base));
      if (end == t.c_str() + t.size() && errno == 0) return Value::integer(x);
      if (auto d = parse_py_float(t); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) return Value::integer(int64_t(*d));
    }
  }
  return def;
}
Value f_items(Interp&, Value v, Args& a) {
  no_args("items", a);
  if (v.is_undefined()) return Value::make_view({}, "generator");
  if (v.kind != Kind::Dict) throw EvalError("Can only get item pairs from a mapping.");
  List l;
  for (const auto& [k, x] : v.dict->items) l.push_back(Value::make_tuple({k, x}));
  return Value::make_view(std::move(l), "generator");
}
Value f_join(Interp& in, Value v, Args& a) {
  Params p("join", a, {"d", "attribute"});
  std::string sep = soft_str(p.get(0, Value::string("")));
  std::string out;
  bool first = true;
  for (auto& x : in.iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += soft_str(p.has(1) && !p.get(1).is_none() ? attr_path(in, x, p.get(1)) : x);
  }
  return Value::string(out);
}
Value f_list(Interp& in, Value v, Args& a) {
  no_args("list", a);
  return Value::make_list(in.iterate(v));
}
Value f_lower(Interp&, Value v, Args& a) {
  no_args("lower", a);
  return Value::string(map_case(soft_str(v), cp_lower));
}
Value f_upper(Interp&, Value v, Args& a) {
  no_args("upper", a);
  return Value::string(map_case(soft_str(v), cp_upper));
}
Value f_map(Interp& in, Value v, Args& a) {
  List out;
  auto items = v.truthy() ? in.iterate(v) : std::vector<Value>{};  // jinja2: `if value:`
  const std::pair<std::string, Value>* attr = nullptr;
  const std::pair<std::string, Value>* def = nullptr;
  for (const auto& kv : a.kw) {
    if (kv.first == "attribute") attr = &kv;
    else if (kv.first == "default") def = &kv;
  }
  if (a.pos.empty() && attr) {
    for (const auto& kv : a.kw)
      if (kv.first != "attribute" && kv.first != "default") throw EvalError("Unexpected keyword argument '" + kv.first + "'");
    for (auto& x : items) {
      Value r = attr_path(in, x, attr->second);
      if (r.is_undefined() && def) r = def->second;
      out.push_back(r);
    }
    return Value::make_view(std::move(out), "generator");
  }
  if (a.pos.empty()) throw EvalError("map requires a filter argument");
  if (!a.pos[0].is_string()) throw EvalError("map: the filter name must be a string");
  std::string name = a.pos[0].s;
  if (!has_filter(name)) throw EvalError("No filter named '" + name + "'.");
  for (auto& x : items) {
    Args rest;
    rest.pos.assign(a.pos.begin() + 1, a.pos.end());
    rest.kw = a.kw;
    out.push_back(in.filter(name, x, rest));
  }
  return Value::make_view(std::move(out), "generator");
}
Value minmax(Interp& in, Value v, Args& a, bool is_max) {
  Params p(is_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  bool cs = p.get_bool(0, false);
  auto items = in.iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  auto key = [&](const Value& x) { return lower_if_str(p.has(1) && !p.get(1).is_none() ? attr_path(in, x, p.get(1)) : x, cs); };
  size_t best = 0;
  for (size_t k = 1; k < items.size(); ++k) {
    bool better = is_max ? less(key(items[best]), key(items[k])) : less(key(items[k]), key(items[best]));
    if (better) best = k;
  }
  return items[best];
}
Value f_max(Interp& in, Value v, Args& a) { return minmax(in, std::move(v), a, true); }
Value f_min(Interp& in, Value v, Args& a) { return minmax(in, std::move(v), a, false); }

Value select_impl(Interp& in, Value v, Args& a, bool by_attr, bool keep) {
  std::string what = std::string(keep ? "select" : "reject") + (by_attr ? "attr" : "");
  if (!a.kw.empty()) throw EvalError(what + " takes no keyword arguments");
  size_t k = 0;
  Value attr;
  if (by_attr) {
    if (a.pos.empty()) throw EvalError("Missing parameter for attribute name");
    attr = a.pos[k++];
  }
  std::optional<std::string> test;
  if (k < a.pos.size()) {
    if (!a.pos[k].is_string()) throw EvalError(what + ": the test name must be a string");
    test = a.pos[k++].s;
    if (!has_test(*test)) throw EvalError("No test named '" + *test + "'.");
  }
  List out;
  for (auto& x : v.truthy() ? in.iterate(v) : std::vector<Value>{}) {  // jinja2: `if value:`
    Value item = by_attr ? attr_path(in, x, attr) : x;
    bool r;
    if (test) {
      Args targs;
      targs.pos.assign(a.pos.begin() + long(k), a.pos.end());
      r = in.test(*test, item, targs);
    } else {
      r = item.truthy();
    }
    if (r == keep) out.push_back(x);
  }
  return Value::make_view(std::move(out), "generator");
}
Value f_select(Interp& in, Value v, Args& a) { return select_impl(in, std::move(v), a, false, true); }
Value f_reject(Interp& in, Value v, Args& a) { return select_impl(in, std::move(v), a, false, false); }
Value f_selectattr(Interp& in, Value v, Args& a) { return select_impl(in, std::move(v), a, true, true); }
Value f_rejectattr(Interp& in, Value v, Args& a) { return select_impl(in, std::move(v), a, true, false); }

Value f_replace(Interp&, Value v, Args& a) {
  Params p("replace", a, {"old", "new", "count"});
  Value cnt = p.get(2);
  return Value::string(py_replace(soft_str(v), soft_str(p.get(0)), soft_str(p.get(1)), cnt.is_none() ? -1 : p.get_int(2, -1)));
}
Value f_reverse(Interp& in, Value v, Args& a) {
  no_args("reverse", a);
  if (v.is_string()) {
    auto cps = utf8_decode(v.s);
    std::reverse(cps.begin(), cps.end());
    return Value::string(utf8_encode(cps));
  }
  auto items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::make_view(std::move(items), "list_reverseiterator");
}
Value f_round(Interp&, Value v, Args& a) {
  Params p("round", a, {"precision", "method"});
  int64_t prec = p.get_int(0, 0);
  std::string method = p.get_str(1, "common");
  if (!v.is_number()) throw EvalError("round: expected a number, got " + v.type_name());
  double x = v.as_double(), m = std::pow(10.0, double(prec));
  if (method == "common" && v.is_int()) return Value::integer(v.as_int());  // round(int) stays an int
  if (method == "common") {
    // Python's round(): the nearest value with ties to even, decided on the exact binary value
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", int(std::clamp<int64_t>(prec, 0, 30)), x);
    double r = prec >= 0 ? std::strtod(buf, nullptr) : std::nearbyint(x / m) * m;
    return Value::number(r);
  }
  if (method == "ceil") return Value::number(std::ceil(x * m) / m);
  if (method == "floor") return Value::number(std::floor(x * m) / m);
  throw EvalError("method must be common, ceil or floor");
}
Value f_safe(Interp&, Value v, Args& a) {
  no_args("safe", a);
  Value r = Value::string(soft_str(v));
  r.markup = true;
  return r;
}
Value f_slice(Interp& in, Value v, Args& a) {
  Params p("slice", a, {"slices", "fill_with"});
  int64_t slices = p.get_int(0, 1);
  if (slices <= 0) throw EvalError("slice: slices must be positive");
  auto seq = in.iterate(v);
  int64_t length = int64_t(seq.size()), per = length / slices, extra = length % slices, offset = 0;
  List out;
  for (int64_t k = 0; k < slices; ++k) {
    int64_t start = offset + k * per;
    if (k < extra) ++offset;
    int64_t end = offset + (k + 1) * per;
    List tmp(seq.begin() + start, seq.begin() + end);
    if (p.has(1) && !p.get(1).is_none() && k >= extra) tmp.push_back(p.get(1));
    out.push_back(Value::make_list(std::move(tmp)));
  }
  return Value::make_view(std::move(out), "generator");
}
Value f_sort(Interp& in, Value v, Args& a) {
  Params p("sort", a, {"reverse", "case_sensitive", "attribute"});
  bool rev = p.get_bool(0, false), cs = p.get_bool(1, false);
  auto items = in.iterate(v);
  std::vector<Value> attrs;
  if (p.has(2) && !p.get(2).is_none()) {
    Value at = p.get(2);
    if (at.is_string()) {
      for (auto& part : py_split(at.s, Value::string(","), -1)) attrs.push_back(Value::string(py_strip(part.s, Value::none(), true, true)));
    } else {
      attrs.push_back(at);
    }
  }
  auto key = [&](const Value& x) {
    if (attrs.empty()) return lower_if_str(x, cs);
    if (attrs.size() == 1) return lower_if_str(attr_path(in, x, attrs[0]), cs);
    List t;
    for (const auto& at : attrs) t.push_back(lower_if_str(attr_path(in, x, at), cs));
    return Value::make_list(std::move(t));
  };
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : items) keyed.emplace_back(key(x), x);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return rev ? less(y.first, x.first) : less(x.first, y.first);
  });
  List out;
  for (auto& kx : keyed) out.push_back(kx.second);
  return Value::make_list(std::move(out));
}
Value f_string(Interp&, Value v, Args& a) {
  no_args("string", a);
  return Value::string(soft_str(v));
}
Value f_striptags(Interp&, Value v, Args& a) {
  no_args("striptags", a);
  std::string s = soft_str(v), out;
  // drop comments and tags, then collapse whitespace and unescape the basic entities
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "<!--") == 0) {
      size_t e = s.find("-->", i + 4);
      i = e == std::string::npos ? s.size() : e + 3;
    } else if (s[i] == '<' && i + 1 < s.size() && (std::isalpha(uint8_t(s[i + 1])) || s[i + 1] == '/' || s[i + 1] == '!')) {
      size_t e = s.find('>', i);
      if (e == std::string::npos) {
        out += s.substr(i);
        break;
      }
      i = e + 1;
    } else {
      out += s[i++];
    }
  }
  List words = py_split(out, Value::none(), -1);
  std::string joined;
  for (size_t k = 0; k < words.size(); ++k) joined += (k ? " " : "") + words[k].s;
  static const std::pair<const char*, const char*> ents[] = {{"&lt;", "<"}, {"&gt;", ">"}, {"&#34;", "\""}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}};
  for (auto [e, r] : ents) joined = py_replace(joined, e, r, -1);
  return Value::string(joined);
}
Value f_sum(Interp& in, Value v, Args& a) {
  Params p("sum", a, {"attribute", "start"});
  Value acc = p.get(1, Value::integer(0));
  for (auto& x : in.iterate(v)) acc = binary_op("+", acc, p.has(0) && !p.get(0).is_none() ? attr_path(in, x, p.get(0)) : x);
  return acc;
}
Value f_title(Interp&, Value v, Args& a) {
  no_args("title", a);
  return Value::string(jinja_title(soft_str(v)));
}
Value f_tojson(Interp&, Value v, Args& a) {
  // transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  Params p("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = p.get_bool(0, false);
  Value ind = p.get(1);
  if (ind.is_string()) o.indent = ind.s;
  else if (ind.is_int()) o.indent = std::string(size_t(std::max<int64_t>(0, ind.as_int())), ' ');
  else if (!ind.is_none()) throw EvalError("tojson: indent must be None, an int or a str");
  if (o.indent) o.item_sep = ",";
  Value sep = p.get(2);
  if (!sep.is_none()) {
    if (!sep.is_sequence() || sep.list->size() != 2 || !(*sep.list)[0].is_string() || !(*sep.list)[1].is_string())
      throw EvalError("tojson: separators must be a pair of strings (item, key)");
    o.item_sep = (*sep.list)[0].s;
    o.key_sep = (*sep.list)[1].s;
  }
  o.sort_keys = p.get_bool(3, false);
  try {
    return Value::string(to_json(v, o));
  } catch (const TemplateError& e) {
    throw EvalError(e.what());
  }
}
Value f_trim(Interp&, Value v, Args& a) {
  Params p("trim", a, {"chars"});
  return Value::string(py_strip(soft_str(v), p.get(0), true, true));
}
Value f_truncate(Interp&, Value v, Args& a) {
  Params p("truncate", a, {"length", "killwords", "end", "leeway"});
  std::string s = soft_str(v), end = p.get_str(2, "...");
  int64_t length = p.get_int(0, 255), leeway = p.has(3) && !p.get(3).is_none() ? p.get_int(3, 5) : 5;
  bool killwords = p.get_bool(1, false);
  auto cps = utf8_decode(s);
  int64_t elen = int64_t(utf8_length(end));
  if (length < elen) throw EvalError("expected length >= " + std::to_string(elen) + ", got " + std::to_string(length));
  if (leeway < 0) throw EvalError("expected leeway >= 0, got " + std::to_string(leeway));
  if (int64_t(cps.size()) <= length + leeway) return Value::string(s);
  std::string head = utf8_encode(cps, 0, size_t(length - elen));
  if (killwords) return Value::string(head + end);
  size_t sp = head.rfind(' ');
  return Value::string((sp == std::string::npos ? head.substr(0, 0) : head.substr(0, sp)) + end);
}
Value f_unique(Interp& in, Value v, Args& a) {
  Params p("unique", a, {"case_sensitive", "attribute"});
  bool cs = p.get_bool(0, false);
  List out, seen;
  for (auto& x : in.iterate(v)) {
    Value k = lower_if_str(p.has(1) && !p.get(1).is_none() ? attr_path(in, x, p.get(1)) : x, cs);
    bool dup = false;
    for (const auto& y : seen) dup = dup || equal(y, k);
    if (!dup) {
      seen.push_back(k);
      out.push_back(x);
    }
  }
  return Value::make_view(std::move(out), "generator");
}
Value f_wordcount(Interp&, Value v, Args& a) {
  no_args("wordcount", a);
  int64_t n = 0;
  bool in_word = false;
  for (uint32_t c : utf8_decode(soft_str(v))) {
    bool w = cp_alpha(c) || cp_digit(c) || c == '_';
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

const std::map<std::string, FilterFn, std::less<>>& filters() {
  static const std::map<std::string, FilterFn, std::less<>> m = {
      {"abs", f_abs},           {"attr", f_attr},         {"batch", f_batch},       {"capitalize", f_capitalize},
      {"center", f_center},     {"count", f_length},      {"d", f_default},         {"default", f_default},
      {"dictsort", f_dictsort}, {"e", f_escape},          {"escape", f_escape},     {"first", f_first},
      {"float", f_float},       {"forceescape", f_forceescape}, {"format", f_format},    {"groupby", f_groupby},   {"indent", f_indent},
      {"int", f_int},           {"items", f_items},       {"join", f_join},         {"last", f_last},
      {"length", f_length},     {"list", f_list},         {"lower", f_lower},       {"map", f_map},
      {"max", f_max},           {"min", f_min},           {"reject", f_reject},     {"rejectattr", f_rejectattr},
      {"replace", f_replace},   {"reverse", f_reverse},   {"round", f_round},       {"safe", f_safe},
      {"select", f_select},     {"selectattr", f_selectattr}, {"slice", f_slice},   {"sort", f_sort},
      {"string", f_string},     {"striptags", f_striptags}, {"sum", f_sum},         {"title", f_title},
      {"tojson", f_tojson},     {"trim", f_trim},         {"truncate", f_truncate}, {"unique", f_unique},
      {"upper", f_upper},       {"wordcount", f_wordcount},
  };
  return m;
}

}  // namespace

// jinja2 filters lmlab does not implement: a template using one fails at parse time naming it.
bool unsupported_filter(std::string_view n) {
  return n == "urlize" || n == "urlencode" || n == "filesizeformat" || n == "xmlattr" ||
         n == "random" || n == "pprint" || n == "wordwrap";
}

namespace {

// ---- tests ----

using TestFn = bool (*)(Interp&, const Value&, Args&);

Value one_arg(const char* what, Args& a) {
  Params p(what, a, {"other"});
  if (!p.has(0)) throw EvalError(std::string("test '") + what + "' needs an argument");
  return p.get(0);
}
bool t_boolean(Interp&, const Value& v, Args&) { return v.kind == Kind::Bool; }
bool t_callable(Interp&, const Value& v, Args&) { return v.kind == Kind::Callable; }
bool t_defined(Interp&, const Value& v, Args&) { return !v.is_undefined(); }
bool t_undefined(Interp&, const Value& v, Args&) { return v.is_undefined(); }
bool t_divisibleby(Interp&, const Value& v, Args& a) {
  Value n = one_arg("divisibleby", a);
  Value r = binary_op("%", v, n);
  return !r.truthy();
}
bool t_eq(Interp&, const Value& v, Args& a) { return equal(v, one_arg("eq", a)); }
bool t_ne(Interp&, const Value& v, Args& a) { return !equal(v, one_arg("ne", a)); }
bool t_lt(Interp&, const Value& v, Args& a) { return less(v, one_arg("lt", a)); }
bool t_gt(Interp&, const Value& v, Args& a) { return less(one_arg("gt", a), v); }
bool t_le(Interp&, const Value& v, Args& a) { return !less(one_arg("le", a), v); }
bool t_ge(Interp&, const Value& v, Args& a) { return !less(v, one_arg("ge", a)); }
bool t_escaped(Interp&, const Value&, Args&) { return false; }
bool t_even(Interp&, const Value& v, Args&) {
  if (!v.is_int()) throw EvalError("even: expected an integer, got " + v.type_name());
  return v.as_int() % 2 == 0;
}
bool t_odd(Interp&, const Value& v, Args&) {
  if (!v.is_int()) throw EvalError("odd: expected an integer, got " + v.type_name());
  return v.as_int() % 2 != 0;
}
bool t_false(Interp&, const Value& v, Args&) { return v.kind == Kind::Bool && !v.b; }
bool t_true(Interp&, const Value& v, Args&) { return v.kind == Kind::Bool && v.b; }
bool t_filter(Interp&, const Value& v, Args&) { return v.is_string() && has_filter(v.s); }
bool t_test(Interp&, const Value& v, Args&) { return v.is_string() && has_test(v.s); }
bool t_float(Interp&, const Value& v, Args&) { return v.kind == Kind::Float; }
bool t_integer(Interp&, const Value& v, Args&) { return v.kind == Kind::Int; }
bool t_in(Interp&, const Value& v, Args& a) { return contains(one_arg("in", a), v); }
bool t_iterable(Interp&, const Value& v, Args&) {
  return v.is_string() || v.is_listlike() || v.kind == Kind::Dict || v.is_undefined();
}
bool t_lower(Interp&, const Value& v, Args&) {
  Args none;
  return v.is_string() && str_method(v, "islower")->fn->fn(none).b;
}
bool t_upper(Interp&, const Value& v, Args&) {
  Args none;
  return v.is_string() && str_method(v, "isupper")->fn->fn(none).b;
}
bool t_mapping(Interp&, const Value& v, Args&) { return v.kind == Kind::Dict; }
bool t_none(Interp&, const Value& v, Args&) { return v.is_none(); }
bool t_number(Interp&, const Value& v, Args&) { return v.is_number(); }
bool t_sameas(Interp&, const Value& v, Args& a) {
  Value o = one_arg("sameas", a);
  if (v.kind != o.kind) return false;
  switch (v.kind) {
    case Kind::None:
    case Kind::Undefined: return true;
    case Kind::Bool: return v.b == o.b;
    case Kind::Int: return v.i == o.i && v.i >= -5 && v.i <= 256;  // CPython's small-int cache
    case Kind::String: return v.s == o.s;
    case Kind::List:
    case Kind::Tuple: return v.list == o.list;
    case Kind::Dict: return v.dict == o.dict;
    case Kind::Callable: return v.fn == o.fn;
    case Kind::Object: return v.obj == o.obj;
    default: return false;
  }
}
bool t_sequence(Interp&, const Value& v, Args&) { return v.is_string() || v.is_sequence() || v.kind == Kind::Dict; }
// (a generator or dict view is iterable but not a sequence)
bool t_string(Interp&, const Value& v, Args&) { return v.is_string(); }

const std::map<std::string, TestFn, std::less<>>& tests() {
  static const std::map<std::string, TestFn, std::less<>> m = {
      {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},   {"undefined", t_undefined},
      {"divisibleby", t_divisibleby}, {"eq", t_eq},     {"equalto", t_eq},        {"==", t_eq},
      {"ne", t_ne},           {"!=", t_ne},             {"lt", t_lt},             {"lessthan", t_lt},
      {"<", t_lt},            {"gt", t_gt},             {"greaterthan", t_gt},    {">", t_gt},
      {"le", t_le},           {"<=", t_le},             {"ge", t_ge},             {">=", t_ge},
      {"escaped", t_escaped}, {"even", t_even},         {"odd", t_odd},           {"false", t_false},
      {"true", t_true},       {"filter", t_filter},     {"test", t_test},         {"float", t_float},
      {"integer", t_integer}, {"in", t_in},             {"iterable", t_iterable}, {"lower", t_lower},
      {"upper", t_upper},     {"mapping", t_mapping},   {"none", t_none},         {"number", t_number},
      {"sameas", t_sameas},   {"sequence", t_sequence}, {"string", t_string},
  };
  return m;
}

// ---- globals ----

struct Cycler : Object {
  List items;
  size_t pos = 0;
  std::string type_name() const override { return "Cycler"; }
  std::optional<Value> get_attr(std::string_view name) override {
    if (name == "current") return items.empty() ? Value::none() : items[pos];
    if (name == "next")
      return bound("cycler.next", [this](Args&) {
        Value v = items[pos];
        pos = (pos + 1) % items.size();
        return v;
      });
    if (name == "reset")
      return bound("cycler.reset", [this](Args&) {
        pos = 0;
        return Value::none();
      });
    return std::nullopt;
  }
};

}  // namespace

bool has_filter(std::string_view name) { return filters().count(name) > 0; }
bool has_test(std::string_view name) { return tests().count(name) > 0; }

Value builtin_filter(Interp& in, std::string_view name, Value input, Args& args) {
  auto it = filters().find(name);
  if (it == filters().end()) {
    if (unsupported_filter(name)) throw EvalError("unsupported filter '" + std::string(name) + "'");
    throw EvalError("no filter named '" + std::string(name) + "'");
  }
  return it->second(in, std::move(input), args);
}

bool builtin_test(Interp& in, std::string_view name, const Value& v, Args& args) {
  auto it = tests().find(name);
  if (it == tests().end()) throw EvalError("no test named '" + std::string(name) + "'");
  return it->second(in, v, args);
}

std::optional<Value> builtin_method(const Value& obj, std::string_view name) {
  if (obj.kind == Kind::Float && name == "is_integer")
    return bound("float.is_integer()", [f = obj.f](Args& a) {
      no_args("float.is_integer()", a);
      return Value::boolean(std::isfinite(f) && f == std::floor(f));
    });
  if (obj.kind == Kind::Int && name == "bit_length")
    return bound("int.bit_length()", [i = obj.i](Args& a) {
      no_args("int.bit_length()", a);
      uint64_t m = i < 0 ? uint64_t(0) - uint64_t(i) : uint64_t(i);
      return Value::integer(m ? 64 - __builtin_clzll(m) : 0);
    });
  switch (obj.kind) {
    case Kind::String: return str_method(obj, name);
    case Kind::Dict: return dict_method(obj, name);
    case Kind::List:
    case Kind::Tuple: return list_method(obj, name);
    default: return std::nullopt;
  }
}

bool is_mutating_method(const Value& obj, std::string_view n) {
  if (obj.kind == Kind::List)
    return n == "append" || n == "extend" || n == "insert" || n == "pop" || n == "remove" || n == "reverse" ||
           n == "sort" || n == "clear";
  if (obj.kind == Kind::Dict)
    return n == "pop" || n == "popitem" || n == "setdefault" || n == "update" || n == "clear";
  return false;
}

std::string strftime_now(const std::string& format) {
  std::tm tm{};
  const char* fixed = std::getenv("LMLAB_FIXED_DATE");
  int y, mo, d;
  if (fixed && std::sscanf(fixed, "%d-%d-%d", &y, &mo, &d) == 3) {
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_isdst = -1;
    std::time_t t = timegm(&tm);
    gmtime_r(&t, &tm);  // fills the weekday and the day of the year
  } else {
    std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  std::string out(256, '\0');
  size_t n = std::strftime(out.data(), out.size(), format.c_str(), &tm);
  if (n == 0 && !format.empty()) {
    out.assign(format.size() * 8 + 64, '\0');
    n = std::strftime(out.data(), out.size(), format.c_str(), &tm);
  }
  out.resize(n);
  return out;
}

Dict builtin_globals(Interp& in) {
  Dict g;
  auto add = [&](const char* name, std::function<Value(Args&)> fn) { g.set(Value::string(name), bound(name, std::move(fn))); };
  add("range", [](Args& a) {
    if (!a.kw.empty()) throw EvalError("range() takes no keyword arguments");
    if (a.pos.empty() || a.pos.size() > 3) throw EvalError("range expected 1 to 3 arguments, got " + std::to_string(a.pos.size()));
    for (const auto& x : a.pos)
      if (!x.is_int()) throw EvalError("'" + x.type_name() + "' object cannot be interpreted as an integer");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) stop = a.pos[0].as_int();
    else {
      start = a.pos[0].as_int();
      stop = a.pos[1].as_int();
      if (a.pos.size() == 3) step = a.pos[2].as_int();
    }
    if (step == 0) throw EvalError("range() arg 3 must not be zero");
    long double count = step > 0 ? (stop > start ? (static_cast<long double>(stop) - start + step - 1) / step : 0)
                                 : (start > stop ? (static_cast<long double>(start) - stop - step - 1) / -step : 0);
    if (count > 100000)
      throw EvalError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    List l;
    for (int64_t k = 0; k < int64_t(count); ++k) l.push_back(Value::integer(start + k * step));
    return Value::make_list(std::move(l));
  });
  add("dict", [](Args& a) {
    Dict d;
    if (a.pos.size() > 1) throw EvalError("dict expected at most 1 argument, got " + std::to_string(a.pos.size()));
    if (!a.pos.empty()) {
      if (a.pos[0].kind != Kind::Dict) throw EvalError("dict(): expected a mapping");
      d = *a.pos[0].dict;
    }
    for (auto& [k, v] : a.kw) d.set(Value::string(k), v);
    return Value::make_dict(std::move(d));
  });
  add("namespace", [](Args& a) {
    auto ns = std::make_shared<Namespace>();
    if (a.pos.size() > 1) throw EvalError("namespace() takes at most one positional argument (a mapping)");
    if (!a.pos.empty()) {
      if (a.pos[0].kind != Kind::Dict) throw EvalError("namespace(): expected a mapping");
      ns->attrs = *a.pos[0].dict;
    }
    for (auto& [k, v] : a.kw) ns->attrs.set(Value::string(k), v);
    return Value::object(ns);
  });
  add("cycler", [](Args& a) {
    if (a.pos.empty()) throw EvalError("cycler() needs at least one item");
    auto c = std::make_shared<Cycler>();
    c->items = a.pos;
    return Value::object(c);
  });
  add("joiner", [](Args& a) {
    Params p("joiner", a, {"sep"});
    std::string sep = p.get_str(0, ", ");
    auto used = std::make_shared<bool>(false);
    return bound("joiner", [sep, used](Args&) {
      if (!*used) {
        *used = true;
        return Value::string("");
      }
      return Value::string(sep);
    });
  });
  add("raise_exception", [](Args& a) -> Value {
    Params p("raise_exception", a, {"message"});
    throw RaisedError(to_str(p.get(0)));
  });
  add("strftime_now", [](Args& a) {
    Params p("strftime_now", a, {"format"});
    return Value::string(strftime_now(p.get_str(0, "")));
  });
  (void)in;
  return g;
}

}  // namespace lmlab::jinja
