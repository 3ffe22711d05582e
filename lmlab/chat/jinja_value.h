// Values of the Jinja engine (jinja.h), with Python's semantics: the data a Hugging Face chat
// template sees is what `transformers` hands jinja2 (JSON decoded by Python's json module), and
// what it prints is what Python prints (True, None, 1e-05, {'a': 1}).
//
// Kinds: Undefined (jinja2's default Undefined: prints as '', iterates as empty, fails on use),
// None, Bool, Int (int64), Float, String (UTF-8; lengths, indices and slices count code points),
// List and Tuple (immutable, shared), Dict (insertion-ordered, immutable, shared), Callable
// (filters, globals, bound methods, macros) and Object (namespace(), the loop variable, cycler,
// joiner: attribute access through a virtual interface; namespace is the only mutable value, as in
// jinja2's ImmutableSandboxedEnvironment).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmlab/core/error.h"

namespace lmlab::jinja {

// A render or parse failure. `what()` is the message a user reads; for raise_exception it is
// exactly the template's message.
struct TemplateError : Error {
  using Error::Error;
};

struct Value;
using List = std::vector<Value>;
struct Dict;
struct Object;
struct Callable;

enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Callable, Object };

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // String; for Undefined, the hint its error names ("'x' is undefined")
  std::shared_ptr<const List> list;      // List, Tuple
  std::shared_ptr<const Dict> dict;      // Dict
  std::shared_ptr<const Callable> fn;    // Callable
  std::shared_ptr<Object> obj;           // Object
  // A List that stands for one of Python's lazy iterables: "generator" (map, select, reject,
  // selectattr, rejectattr, batch, slice, items, unique), "list_reverseiterator" (reverse),
  // "dict_items"/"dict_keys"/"dict_values" (dict methods). Iteration is the same; what differs is
  // what Python does with them: a generator is always true, has no len(), no index and no JSON.
  std::string view;
  // A String that is markupsafe's Markup (from |safe or |escape): `+` with a plain string escapes
  // the plain one, as Markup.__add__ does.
  bool markup = false;

  Value() = default;
  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(List v);
  static Value make_tuple(List v);
  static Value make_view(List v, std::string view);
  bool is_iterator() const { return view == "generator" || view.ends_with("iterator"); }
  static Value make_dict(Dict v);
  static Value callable(std::shared_ptr<const Callable> c);
  static Value object(std::shared_ptr<Object> o);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_int() const { return kind == Kind::Int || kind == Kind::Bool; }  // Python: bool is an int
  bool is_number() const { return is_int() || kind == Kind::Float; }
  bool is_sequence() const { return (kind == Kind::List && view.empty()) || kind == Kind::Tuple; }
  bool is_listlike() const { return kind == Kind::List || kind == Kind::Tuple; }
  double as_double() const { return kind == Kind::Float ? f : kind == Kind::Bool ? double(b) : double(i); }
  int64_t as_int() const { return kind == Kind::Bool ? int64_t(b) : i; }

  bool truthy() const;
  // Python's type name, as error messages print it: 'str', 'int', 'dict', 'NoneType', ...
  std::string type_name() const;
};

// An insertion-ordered dict; keys are hashable Values (strings, numbers, None, bools, tuples).
struct Dict {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  // Sets or appends (Python's d[k] = v on a dict being built).
  void set(Value key, Value value);
};

// Positional and keyword arguments of a call.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct Callable {
  std::string name;  // for messages: "filter 'join'", "macro 'm'", "str.split"
  std::function<Value(Args&)> fn;
};

// Attribute access for objects that are not data (namespace, loop, cycler, joiner).
struct Object {
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;
  // nullopt: no such attribute.
  virtual std::optional<Value> get_attr(std::string_view name) = 0;
  // false: this object's attributes cannot be assigned.
  virtual bool set_attr(std::string_view, Value) { return false; }
  virtual std::string repr() const;
};

// jinja2's namespace(): the one mutable value templates have ({% set ns.x = ... %}).
struct Namespace : Object {
  Dict attrs;
  std::string type_name() const override { return "Namespace"; }
  std::optional<Value> get_attr(std::string_view name) override;
  bool set_attr(std::string_view name, Value v) override;
  std::string repr() const override;
};

// str(v) as Python prints it ('' for Undefined, None, True, 1.5, [1, 'a'], {'k': 'v'}).
std::string to_str(const Value& v);
// repr(v) (strings quoted and escaped as Python does).
std::string to_repr(const Value& v);
// Python's repr of a float (shortest round-trip digits; 1e-05, 1e+16, 1.0, inf, nan).
std::string float_repr(double d);
// Python's repr of a str.
std::string string_repr(std::string_view s);

// Python's == (1 == 1.0 == True, deep for lists, tuples and dicts).
bool equal(const Value& a, const Value& b);
// Python's <; throws TemplateError for types Python cannot order.
bool less(const Value& a, const Value& b);

// JSON in (json.loads: objects keep key order, integers stay ints) and json.dumps out (with the
// keyword arguments of transformers' tojson filter).
Value from_json(const nlohmann::ordered_json& j);
struct JsonDumpOptions {
  std::optional<std::string> indent;  // None, or the indent string (an int n is n spaces)
  std::string item_sep = ", ";        // separators (item, key); json.dumps' defaults follow indent
  std::string key_sep = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
std::string to_json(const Value& v, const JsonDumpOptions& o);
// The Value as nlohmann JSON (Undefined and callables refused).
nlohmann::ordered_json to_nlohmann(const Value& v);

// UTF-8 helpers on code points (Python's str indexing).
std::vector<uint32_t> utf8_decode(std::string_view s);
std::string utf8_encode(const std::vector<uint32_t>& cps, size_t begin = 0, size_t end = SIZE_MAX);
void utf8_append(std::string& out, uint32_t cp);
size_t utf8_length(std::string_view s);
bool is_py_space(uint32_t cp);

}  // namespace lmlab::jinja
