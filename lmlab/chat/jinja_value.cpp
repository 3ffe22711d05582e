// Values of the Jinja engine: construction, Python's str/repr/==/<, JSON in and out, UTF-8.
#include "lmlab/chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace lmlab::jinja {

Value Value::undefined(std::string hint) {
  Value v;
  v.kind = Kind::Undefined;
  v.s = std::move(hint);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::Int;
  v.i = x;
  return v;
}
Value Value::number(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  Value v;
  v.kind = Kind::String;
  v.s = std::move(x);
  return v;
}
Value Value::make_list(List x) {
  Value v;
  v.kind = Kind::List;
  v.list = std::make_shared<const List>(std::move(x));
  return v;
}
Value Value::make_tuple(List x) {
  Value v;
  v.kind = Kind::Tuple;
  v.list = std::make_shared<const List>(std::move(x));
  return v;
}
Value Value::make_view(List x, std::string view) {
  Value v = make_list(std::move(x));
  v.view = std::move(view);
  return v;
}
Value Value::make_dict(Dict x) {
  Value v;
  v.kind = Kind::Dict;
  v.dict = std::make_shared<const Dict>(std::move(x));
  return v;
}
Value Value::callable(std::shared_ptr<const Callable> c) {
  Value v;
  v.kind = Kind::Callable;
  v.fn = std::move(c);
  return v;
}
Value Value::object(std::shared_ptr<Object> o) {
  Value v;
  v.kind = Kind::Object;
  v.obj = std::move(o);
  return v;
}

bool Value::truthy() const {
  switch (kind) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return b;
    case Kind::Int: return i != 0;
    case Kind::Float: return f != 0;
    case Kind::String: return !s.empty();
    case Kind::List:
    case Kind::Tuple: return is_iterator() || !list->empty();
    case Kind::Dict: return !dict->items.empty();
    case Kind::Callable:
    case Kind::Object: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return view.empty() ? "list" : view;
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Callable: return "function";
    case Kind::Object: return obj->type_name();
  }
  return "?";
}

// ---- Dict ----

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (equal(k, key)) return &v;
  return nullptr;
}
const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k.kind == Kind::String && k.s == key) return &v;
  return nullptr;
}
void Dict::set(Value key, Value value) {
  for (auto& [k, v] : items)
    if (equal(k, key)) {
      v = std::move(value);
      return;
    }
  items.emplace_back(std::move(key), std::move(value));
}

// ---- objects ----

std::string Object::repr() const { return "<" + type_name() + " object>"; }

std::optional<Value> Namespace::get_attr(std::string_view name) {
  if (const Value* v = attrs.find(name)) return *v;
  return std::nullopt;
}
bool Namespace::set_attr(std::string_view name, Value v) {
  attrs.set(Value::string(std::string(name)), std::move(v));
  return true;
}
std::string Namespace::repr() const { return "<Namespace " + to_repr(Value::make_dict(attrs)) + ">"; }

// ---- UTF-8 ----

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Decodes UTF-8; a byte that does not start a valid sequence decodes as itself in 0xDC80..0xDCFF
// (Python's surrogateescape), so that encoding gives the input back byte for byte.
std::vector<uint32_t> utf8_decode(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    unsigned c = p[i];
    int n = -1;
    uint32_t cp = 0;
    if (c < 0x80) n = 0, cp = c;
    else if ((c >> 5) == 6) n = 1, cp = c & 0x1F;
    else if ((c >> 4) == 14) n = 2, cp = c & 0x0F;
    else if ((c >> 3) == 30) n = 3, cp = c & 0x07;
    bool ok = n >= 0 && i + size_t(n) < s.size();
    for (int k = 1; ok && k <= n; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (ok && ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    if (!ok) {
      out.push_back(0xDC00 + c);
      i += 1;
    } else {
      out.push_back(cp);
      i += size_t(n) + 1;
    }
  }
  return out;
}

std::string utf8_encode(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  end = std::min(end, cps.size());
  for (size_t k = begin; k < end; ++k) {
    uint32_t cp = cps[k];
    if (cp >= 0xDC80 && cp <= 0xDCFF) out += char(cp - 0xDC00);
    else utf8_append(out, cp);
  }
  return out;
}

size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

// Python's str.isspace() / \s (the Unicode whitespace set).
bool is_py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// ---- printing ----

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  if (exp < -4 || exp >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + eb;
  }
  if (exp >= 0) {
    std::string ip = digits.substr(0, std::min<size_t>(digits.size(), size_t(exp) + 1));
    while (ip.size() < size_t(exp) + 1) ip += '0';
    std::string fp = digits.size() > size_t(exp) + 1 ? digits.substr(size_t(exp) + 1) : "0";
    return sign + ip + "." + fp;
  }
  return sign + "0." + std::string(size_t(-exp - 1), '0') + digits;
}

// Python's str.isprintable() for the code points repr escapes: controls, separators other than
// the space, format characters, private use and surrogates.
static bool py_printable(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp >= 0x80 && cp <= 0xA0) return false;
  if (cp == 0xAD) return false;
  if (cp >= 0x600 && cp <= 0x605) return false;
  if (cp == 0x61C || cp == 0x6DD || cp == 0x70F || cp == 0x180E || cp == 0x1680) return false;
  if (cp >= 0x2000 && cp <= 0x200F) return false;
  if (cp >= 0x2028 && cp <= 0x202F) return false;
  if (cp >= 0x205F && cp <= 0x206F) return false;
  if (cp == 0x3000 || cp == 0xFEFF) return false;
  if (cp >= 0xD800 && cp <= 0xF8FF) return false;
  if (cp >= 0xFFF0 && cp <= 0xFFFB) return false;
  if (cp == 0xFFFE || cp == 0xFFFF) return false;
  if (cp >= 0xE0000 && cp <= 0xE007F) return false;
  if (cp >= 0xF0000) return false;
  return true;
}

std::string string_repr(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos;
  bool has_dq = s.find('"') != std::string_view::npos;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  std::string out(1, q);
  for (uint32_t cp : utf8_decode(s)) {
    if (cp == uint32_t(q) || cp == '\\') {
      out += '\\';
      out += char(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!py_printable(cp)) {
      char b[16];
      if (cp < 0x100) std::snprintf(b, sizeof b, "\\x%02x", cp);
      else if (cp < 0x10000) std::snprintf(b, sizeof b, "\\u%04x", cp);
      else std::snprintf(b, sizeof b, "\\U%08x", cp);
      out += b;
    } else {
      utf8_append(out, cp);
    }
  }
  out += q;
  return out;
}

std::string to_repr(const Value& v) {
  switch (v.kind) {
    case Kind::String: return string_repr(v.s);
    case Kind::Undefined: return "Undefined";
    case Kind::List:
    case Kind::Tuple: {
      if (v.is_iterator()) return "<" + v.view + " object>";
      if (!v.view.empty()) {
        Value plain = v;
        plain.view.clear();
        return v.view + "(" + to_repr(plain) + ")";
      }
      bool tup = v.kind == Kind::Tuple;
      std::string out = tup ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        out += to_repr((*v.list)[k]);
      }
      if (tup && v.list->size() == 1) out += ",";
      return out + (tup ? ")" : "]");
    }
    case Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        out += to_repr(k) + ": " + to_repr(x);
      }
      return out + "}";
    }
    default: return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return v.b ? "True" : "False";
    case Kind::Int: return std::to_string(v.i);
    case Kind::Float: return float_repr(v.f);
    case Kind::String: return v.s;
    case Kind::List:
    case Kind::Tuple:
    case Kind::Dict: return to_repr(v);
    case Kind::Callable: return "<function " + v.fn->name + ">";
    case Kind::Object: return v.obj->repr();
  }
  return "";
}

// ---- comparison ----

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind != b.kind) return false;
  if (!a.view.empty() || !b.view.empty()) return a.view == b.view && a.list == b.list;
  switch (a.kind) {
    case Kind::Undefined:
    case Kind::None: return true;
    case Kind::String: return a.s == b.s;
    case Kind::List:
    case Kind::Tuple: {
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    }
    case Kind::Dict: {
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, x] : a.dict->items) {
        const Value* y = b.dict->find(k);
        if (!y || !equal(x, *y)) return false;
      }
      return true;
    }
    case Kind::Callable: return a.fn == b.fn;
    case Kind::Object: return a.obj == b.obj;
    default: return false;
  }
}

bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == Kind::Float || b.kind == Kind::Float) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.kind == Kind::String && b.kind == Kind::String) return a.s < b.s;
  if (a.is_sequence() && b.is_sequence() && a.kind == b.kind) {
    size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k) {
      const Value& x = (*a.list)[k];
      const Value& y = (*b.list)[k];
      if (!equal(x, y)) return less(x, y);
    }
    return a.list->size() < b.list->size();
  }
  throw TemplateError("'<' not supported between instances of '" + a.type_name() + "' and '" +
                      b.type_name() + "'");
}

// ---- JSON ----

Value from_json(const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null: return Value::none();
    case T::boolean: return Value::boolean(j.get<bool>());
    case T::number_integer: return Value::integer(j.get<int64_t>());
    case T::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > uint64_t(INT64_MAX)) return Value::number(double(u));
      return Value::integer(int64_t(u));
    }
    case T::number_float: return Value::number(j.get<double>());
    case T::string: return Value::string(j.get<std::string>());
    case T::array: {
      List l;
      l.reserve(j.size());
      for (const auto& x : j) l.push_back(from_json(x));
      return Value::make_list(std::move(l));
    }
    case T::object: {
      Dict d;
      d.items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it)
        d.items.emplace_back(Value::string(it.key()), from_json(it.value()));
      return Value::make_dict(std::move(d));
    }
    default: throw TemplateError("JSON value of an unsupported type (binary)");
  }
}

static void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  for (uint32_t cp : utf8_decode(s)) {
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        char b[16];
        if (cp < 0x20) {
          std::snprintf(b, sizeof b, "\\u%04x", cp);
          out += b;
        } else if (ensure_ascii && cp >= 0x80) {
          if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            std::snprintf(b, sizeof b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
          } else {
            std::snprintf(b, sizeof b, "\\u%04x", cp);
          }
          out += b;
        } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
          out += char(cp - 0xDC00);  // an undecodable input byte, passed through
        } else {
          utf8_append(out, cp);
        }
      }
    }
  }
  out += '"';
}

static std::string json_key(const Value& k) {
  switch (k.kind) {
    case Kind::String: return k.s;
    case Kind::Int: return std::to_string(k.i);
    case Kind::Bool: return k.b ? "true" : "false";
    case Kind::None: return "null";
    case Kind::Float: return float_repr(k.f);
    default: throw TemplateError("keys must be str, int, float, bool or None, not " + k.type_name());
  }
}

static void json_dump(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  switch (v.kind) {
    case Kind::None: out += "null"; return;
    case Kind::Bool: out += v.b ? "true" : "false"; return;
    case Kind::Int: out += std::to_string(v.i); return;
    case Kind::Float:
      if (std::isnan(v.f)) out += "NaN";
      else if (std::isinf(v.f)) out += v.f > 0 ? "Infinity" : "-Infinity";
      else out += float_repr(v.f);
      return;
    case Kind::String: json_string(out, v.s, o.ensure_ascii); return;
    case Kind::List:
    case Kind::Tuple:
    case Kind::Dict: {
      if (!v.view.empty()) throw TemplateError("Object of type " + v.view + " is not JSON serializable");
      bool is_dict = v.kind == Kind::Dict;
      size_t n = is_dict ? v.dict->items.size() : v.list->size();
      if (n == 0) {
        out += is_dict ? "{}" : "[]";
        return;
      }
      out += is_dict ? '{' : '[';
      std::string nl;
      if (o.indent) {
        nl = "\n";
        for (int k = 0; k <= level; ++k) nl += *o.indent;
      }
      std::vector<size_t> order(n);
      for (size_t k = 0; k < n; ++k) order[k] = k;
      if (is_dict && o.sort_keys)
        std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
          return less(v.dict->items[x].first, v.dict->items[y].first);
        });
      out += nl;
      for (size_t k = 0; k < n; ++k) {
        if (k) out += o.item_sep + nl;
        if (is_dict) {
          const auto& [key, val] = v.dict->items[order[k]];
          json_string(out, json_key(key), o.ensure_ascii);
          out += o.key_sep;
          json_dump(out, val, o, level + 1);
        } else {
          json_dump(out, (*v.list)[k], o, level + 1);
        }
      }
      if (o.indent) {
        out += "\n";
        for (int k = 0; k < level; ++k) out += *o.indent;
      }
      out += is_dict ? '}' : ']';
      return;
    }
    default:
      throw TemplateError("Object of type " + v.type_name() + " is not JSON serializable");
  }
}

std::string to_json(const Value& v, const JsonDumpOptions& o) {
  std::string out;
  json_dump(out, v, o, 0);
  return out;
}

nlohmann::ordered_json to_nlohmann(const Value& v) {
  switch (v.kind) {
    case Kind::None: return nullptr;
    case Kind::Bool: return v.b;
    case Kind::Int: return v.i;
    case Kind::Float: return v.f;
    case Kind::String: return v.s;
    case Kind::List:
    case Kind::Tuple: {
      if (!v.view.empty()) throw TemplateError("Object of type " + v.view + " is not JSON serializable");
      auto j = nlohmann::ordered_json::array();
      for (const auto& x : *v.list) j.push_back(to_nlohmann(x));
      return j;
    }
    case Kind::Dict: {
      auto j = nlohmann::ordered_json::object();
      for (const auto& [k, x] : v.dict->items) j[json_key(k)] = to_nlohmann(x);
      return j;
    }
    default:
      throw TemplateError("Object of type " + v.type_name() + " is not JSON serializable");
  }
}

}  // namespace lmlab::jinja
