// The interpreter of the Jinja engine: expressions with Python's semantics and statements with
// jinja2's scoping — a for loop's body is a fresh scope on every iteration (a set inside it does not
// survive the iteration; namespace() is how templates carry state out), if does not open a scope,
// macros see the scope they were defined in as it is when they are called.
#include <algorithm>
#include <climits>
#include <cmath>

#include "lmlab/chat/jinja.h"
#include "lmlab/chat/jinja_interp.h"

namespace lmlab::jinja {

using ast::Expr;
using ast::Stmt;

namespace {

constexpr int kMaxDepth = 256;  // nested macro calls and blocks
// Work and output bounds: far beyond any chat template (a few loops over messages and tools), and
// they turn a runaway template (nested range(100000) loops) into an error instead of a hang.
constexpr int64_t kMaxSteps = 10'000'000;
constexpr size_t kMaxOutput = size_t(256) << 20;

// The loop variable of a for loop.
struct LoopObject : Object {
  std::vector<Value> items;
  size_t index = 0;
  std::shared_ptr<const Callable> cycle_fn, changed_fn;
  std::vector<Value> last_changed;
  bool changed_init = false;

  std::string type_name() const override { return "LoopContext"; }
  std::optional<Value> get_attr(std::string_view name) override {
    int64_t n = int64_t(items.size()), i = int64_t(index);
    if (name == "index") return Value::integer(i + 1);
    if (name == "index0") return Value::integer(i);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem")
      return i > 0 ? items[size_t(i - 1)] : Value::undefined("there is no previous item");
    if (name == "nextitem")
      return i + 1 < n ? items[size_t(i + 1)] : Value::undefined("there is no next item");
    if (name == "cycle") return Value::callable(cycle_fn);
    if (name == "changed") return Value::callable(changed_fn);
    return std::nullopt;
  }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index + 1) + "/" + std::to_string(items.size()) + ">";
  }
};

[[noreturn]] void undefined_error(const Value& u) {
  throw EvalError(u.s.empty() ? "value is undefined" : u.s);
}

// Python's slice.indices(n) and the elements it selects.
std::vector<size_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step) {
  auto num = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_int()) throw EvalError(std::string("slice ") + what + " must be an integer or None");
    return v.as_int();
  };
  int64_t st = num(step, "step").value_or(1);
  if (st == 0) throw EvalError("slice step cannot be zero");
  int64_t lo, hi;
  auto clamp = [&](std::optional<int64_t> x, int64_t def) {
    if (!x) return def;
    int64_t v = *x;
    if (v < 0) v += n;
    if (st > 0) return std::clamp<int64_t>(v, 0, n);
    return std::clamp<int64_t>(v, -1, n - 1);
  };
  lo = clamp(num(start, "start"), st > 0 ? 0 : n - 1);
  hi = clamp(num(stop, "stop"), st > 0 ? n : -1);
  std::vector<size_t> out;
  if (st > 0)
    for (int64_t k = lo; k < hi; k += st) out.push_back(size_t(k));
  else
    for (int64_t k = lo; k > hi; k += st) out.push_back(size_t(k));
  return out;
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  return v.type_name() + " object";
}

}  // namespace

// ---- helpers the builtins share ----

bool contains(const Value& c, const Value& x) {
  switch (c.kind) {
    case Kind::String:
      if (!x.is_string())
        throw EvalError("'in <string>' requires string as left operand, not " + x.type_name());
      return c.s.find(x.s) != std::string::npos;
    case Kind::List:
    case Kind::Tuple:
      for (const auto& y : *c.list)
        if (equal(x, y)) return true;
      return false;
    case Kind::Dict: return c.dict->find(x) != nullptr;
    case Kind::Undefined: return false;
    case Kind::Object:
      if (auto ns = std::dynamic_pointer_cast<Namespace>(c.obj)) return x.is_string() && ns->attrs.find(x.s);
      [[fallthrough]];
    default: throw EvalError("argument of type '" + c.type_name() + "' is not iterable");
  }
}

static int64_t checked(bool overflow, int64_t v) {
  if (overflow) throw EvalError("integer overflow (lmlab's integers are 64-bit)");
  return v;
}

static double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

// printf-style formatting ("%s" % x), for the conversions templates use: %s %r %d %i %f %x %%.
static std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> vals;
  if (args.kind == Kind::Tuple) vals = *args.list;
  else if (args.kind != Kind::Dict) vals.push_back(args);
  std::string out;
  size_t ai = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) throw EvalError("incomplete format");
    const Value* keyed = nullptr;
    if (fmt[i] == '(') {  // %(name)s against a mapping
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) throw EvalError("incomplete format key");
      if (args.kind != Kind::Dict) throw EvalError("format requires a mapping");
      keyed = args.dict->find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!keyed) throw EvalError("KeyError: '" + fmt.substr(i + 1, close - i - 1) + "'");
      i = close + 1;
      if (i >= fmt.size()) throw EvalError("incomplete format");
    }
    std::string spec;
    while (i < fmt.size() && std::strchr("-+ #0123456789.", fmt[i])) spec += fmt[i++];
    if (i >= fmt.size()) throw EvalError("incomplete format");
    char c = fmt[i];
    if (c == '%') {
      out += '%';
      continue;
    }
    if (!keyed && ai >= vals.size()) throw EvalError("not enough arguments for format string");
    const Value& v = keyed ? *keyed : vals[ai++];
    char buf[512];
    std::string f = "%" + spec;
    switch (c) {
      case 's': {
        std::string s = to_str(v);
        std::snprintf(buf, sizeof buf, (f + "s").c_str(), s.c_str());
        out += spec.empty() ? s : std::string(buf);
        break;
      }
      case 'r': out += to_repr(v); break;
      case 'd':
      case 'i':
        if (!v.is_number()) throw EvalError("%d format: a real number is required, not " + v.type_name());
        std::snprintf(buf, sizeof buf, (f + "lld").c_str(), (long long)(v.kind == Kind::Float ? std::trunc(v.f) : v.as_int()));
        out += buf;
        break;
      case 'f':
      case 'e':
      case 'g':
        if (!v.is_number()) throw EvalError(std::string("%") + c + " format: a real number is required, not " + v.type_name());
        std::snprintf(buf, sizeof buf, (f + c).c_str(), v.as_double());
        out += buf;
        break;
      case 'x':
      case 'X':
      case 'o':
        if (!v.is_int()) throw EvalError(std::string("%") + c + " format: an integer is required, not " + v.type_name());
        std::snprintf(buf, sizeof buf, (f + "ll" + c).c_str(), (long long)v.as_int());
        out += buf;
        break;
      default: throw EvalError(std::string("unsupported format character '") + c + "'");
    }
  }
  if (ai < vals.size() && args.kind != Kind::Dict) throw EvalError("not all arguments converted during string formatting");
  return out;
}

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  auto unsupported = [&]() -> Value {
    throw EvalError("unsupported operand type(s) for " + std::string(op) + ": '" + a.type_name() + "' and '" +
                    b.type_name() + "'");
  };
  bool ints = a.is_int() && b.is_int();
  bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) {
      int64_t r;
      bool o = __builtin_add_overflow(a.as_int(), b.as_int(), &r);
      return Value::integer(checked(o, r));
    }
    if (nums) return Value::number(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      if (a.markup == b.markup) {
        Value r = Value::string(a.s + b.s);
        r.markup = a.markup;
        return r;
      }
      Value r = Value::string(a.markup ? a.s + html_escape(b.s) : html_escape(a.s) + b.s);
      r.markup = true;
      return r;
    }
    if (a.is_sequence() && b.is_sequence() && a.kind == b.kind) {
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return a.kind == Kind::List ? Value::make_list(std::move(l)) : Value::make_tuple(std::move(l));
    }
    if (a.is_string()) throw EvalError("can only concatenate str (not \"" + b.type_name() + "\") to str");
    if (a.kind == Kind::List) throw EvalError("can only concatenate list (not \"" + b.type_name() + "\") to list");
    return unsupported();
  }
  if (op == "-") {
    if (ints) {
      int64_t r;
      bool o = __builtin_sub_overflow(a.as_int(), b.as_int(), &r);
      return Value::integer(checked(o, r));
    }
    if (nums) return Value::number(a.as_double() - b.as_double());
    return unsupported();
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      bool o = __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
      return Value::integer(checked(o, r));
    }
    if (nums) return Value::number(a.as_double() * b.as_double());
    const Value* seq = a.is_int() ? &b : &a;
    const Value* cnt = a.is_int() ? &a : &b;
    if (cnt->is_int() && (seq->is_string() || seq->is_sequence())) {
      int64_t n = std::max<int64_t>(0, cnt->as_int());
      size_t unit = seq->is_string() ? seq->s.size() : seq->list->size();
      if (unit && n > int64_t((size_t(1) << 26) / unit))
        throw EvalError("repetition too large (the result would exceed 64 Mi elements)");
      if (seq->is_string()) {
        std::string r;
        for (int64_t k = 0; k < n; ++k) r += seq->s;
        return Value::string(std::move(r));
      }
      List l;
      for (int64_t k = 0; k < n; ++k) l.insert(l.end(), seq->list->begin(), seq->list->end());
      return seq->kind == Kind::List ? Value::make_list(std::move(l)) : Value::make_tuple(std::move(l));
    }
    return unsupported();
  }
  if (op == "/") {
    if (!nums) return unsupported();
    if (b.as_double() == 0) throw EvalError("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (!nums) return unsupported();
    if (ints) {
      if (b.as_int() == 0) throw EvalError("integer division or modulo by zero");
      int64_t x = a.as_int(), y = b.as_int();
      if (x == INT64_MIN && y == -1) throw EvalError("integer overflow (lmlab's integers are 64-bit)");
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return Value::integer(q);
    }
    if (b.as_double() == 0) throw EvalError("float floor division by zero");
    return Value::number(std::floor(a.as_double() / b.as_double()));
  }
  if (op == "%") {
    if (a.is_string() && !a.markup) return Value::string(percent_format(a.s, b));
    if (a.is_string()) {  // Markup % args escapes the arguments
      auto esc = [](const Value& x) { return x.is_string() && !x.markup ? Value::string(html_escape(x.s)) : x; };
      Value args = b;
      if (b.kind == Kind::Tuple) {
        List l;
        for (const auto& x : *b.list) l.push_back(esc(x));
        args = Value::make_tuple(std::move(l));
      } else {
        args = esc(b);
      }
      Value r = Value::string(percent_format(a.s, args));
      r.markup = true;
      return r;
    }
    if (!nums) return unsupported();
    if (ints) {
      if (b.as_int() == 0) throw EvalError("integer division or modulo by zero");
      int64_t x = a.as_int(), y = b.as_int();
      if (y == -1) return Value::integer(0);
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::integer(m);
    }
    if (b.as_double() == 0) throw EvalError("float modulo");
    return Value::number(py_fmod(a.as_double(), b.as_double()));
  }
  if (op == "**") {
    if (!nums) return unsupported();
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), r = 1;
      while (e > 0) {
        if (e & 1 && __builtin_mul_overflow(r, base, &r)) checked(true, 0);
        e >>= 1;
        if (e && __builtin_mul_overflow(base, base, &base)) checked(true, 0);
      }
      return Value::integer(r);
    }
    if (a.as_double() == 0 && b.as_double() < 0) throw EvalError("0.0 cannot be raised to a negative power");
    return Value::number(std::pow(a.as_double(), b.as_double()));
  }
  throw EvalError("unknown operator " + std::string(op));
}

// ---- the interpreter ----

void Interp::fail(int line, const std::string& msg) const {
  throw TemplateError(name_ + ":" + std::to_string(line) + ": " + msg);
}

std::vector<Value> Interp::iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return {};
    case Kind::List:
    case Kind::Tuple: return *v.list;
    case Kind::Dict: {
      std::vector<Value> keys;
      for (const auto& [k, x] : v.dict->items) keys.push_back(k);
      return keys;
    }
    case Kind::String: {
      std::vector<Value> chars;
      auto cps = utf8_decode(v.s);
      for (size_t k = 0; k < cps.size(); ++k) chars.push_back(Value::string(utf8_encode(cps, k, k + 1)));
      return chars;
    }
    default: throw EvalError("'" + v.type_name() + "' object is not iterable");
  }
}

Value Interp::getattr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) undefined_error(obj);
  if (obj.kind == Kind::Object) {
    if (auto v = obj.obj->get_attr(name)) return *v;
    return Value::undefined("'" + obj.obj->type_name() + " object' has no attribute '" + std::string(name) + "'");
  }
  // groupby's groups are (grouper, list) named tuples
  if (obj.kind == Kind::Tuple && obj.list->size() == 2 && (name == "grouper" || name == "list"))
    return (*obj.list)[name == "grouper" ? 0 : 1];
  if (is_mutating_method(obj, name))
    return Value::undefined("access to attribute '" + std::string(name) + "' of '" + obj.type_name() +
                            "' object is unsafe.");
  if (auto m = builtin_method(obj, name)) return *m;
  if (obj.kind == Kind::Dict)
    if (const Value* v = obj.dict->find(name)) return *v;
  return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + std::string(name) + "'");
}

Value Interp::getitem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_error(obj);
  switch (obj.kind) {
    case Kind::Dict:
      if (const Value* v = obj.dict->find(key)) return *v;
      break;
    case Kind::List:
    case Kind::Tuple:
    case Kind::String:
      if (key.is_int() && (obj.is_string() || obj.is_sequence())) {
        int64_t n = obj.is_string() ? int64_t(utf8_length(obj.s)) : int64_t(obj.list->size());
        int64_t k = key.as_int();
        if (k < 0) k += n;
        if (k >= 0 && k < n) {
          if (!obj.is_string()) return (*obj.list)[size_t(k)];
          auto cps = utf8_decode(obj.s);
          return Value::string(utf8_encode(cps, size_t(k), size_t(k) + 1));
        }
        return Value::undefined("'" + object_type_repr(obj) + "' has no element " + std::to_string(key.as_int()));
      }
      break;
    case Kind::Object:
      if (key.is_string()) return getattr(obj, key.s);
      break;
    default: break;
  }
  if (key.is_string()) return getattr(obj, key.s);  // item, then attribute
  return Value::undefined("'" + object_type_repr(obj) + "' has no element " + to_repr(key));
}

void Interp::step() {
  if (++steps_ > kMaxSteps)
    throw EvalError("the template ran more than " + std::to_string(kMaxSteps) + " loop iterations and calls");
  if (out_ && out_->size() > kMaxOutput)
    throw EvalError("the template's output passed " + std::to_string(kMaxOutput >> 20) + " MiB");
}

Value Interp::call(const Value& fn, Args& args) {
  step();
  if (fn.is_undefined()) {
    // calling an unsafe method: jinja2's SecurityError
    if (fn.s.find("is unsafe.") != std::string::npos) throw EvalError(fn.s);
    undefined_error(fn);
  }
  if (fn.kind != Kind::Callable) throw EvalError("'" + fn.type_name() + "' object is not callable");
  if (++depth_ > kMaxDepth) {
    --depth_;
    throw EvalError("maximum recursion depth exceeded (" + std::to_string(kMaxDepth) + " nested calls)");
  }
  struct Guard {
    int& d;
    ~Guard() { --d; }
  } guard{depth_};
  return fn.fn->fn(args);
}

Value Interp::filter(std::string_view name, Value input, Args& args) {
  return builtin_filter(*this, name, std::move(input), args);
}
bool Interp::test(std::string_view name, const Value& v, Args& args) { return builtin_test(*this, name, v, args); }

void Interp::collect_args(const Expr& e, size_t first, const FramePtr& f, Args& args) {
  for (size_t k = first; k < e.items.size(); ++k) args.pos.push_back(eval(*e.items[k], f));
  for (const auto& [key, x] : e.kwargs) args.kw.emplace_back(key, eval(*x, f));
  if (e.dyn_args) {
    Value d = eval(*e.dyn_args, f);
    for (auto& x : iterate(d)) args.pos.push_back(x);
  }
  if (e.dyn_kwargs) {
    Value d = eval(*e.dyn_kwargs, f);
    if (d.kind != Kind::Dict) throw EvalError("argument after ** must be a mapping, not " + d.type_name());
    for (const auto& [k, x] : d.dict->items) {
      if (!k.is_string()) throw EvalError("keywords must be strings");
      args.kw.emplace_back(k.s, x);
    }
  }
}

Value Interp::eval(const Expr& e, const FramePtr& f) {
  try {
    return eval_inner(e, f);
  } catch (const EvalError& err) {
    fail(e.line, err.what());
  }
}

Value Interp::eval_inner(const Expr& e, const FramePtr& f) {
  switch (e.type) {
    case Expr::Const: return e.value;
    case Expr::Name: {
      if (const Value* v = f->find(e.name)) return *v;
      return Value::undefined("'" + e.name + "' is undefined");
    }
    case Expr::ListLit:
    case Expr::TupleLit: {
      List l;
      for (const auto& x : e.items) l.push_back(eval(*x, f));
      return e.type == Expr::ListLit ? Value::make_list(std::move(l)) : Value::make_tuple(std::move(l));
    }
    case Expr::DictLit: {
      Dict d;
      for (size_t k = 0; k + 1 < e.items.size(); k += 2) {
        Value key = eval(*e.items[k], f);
        if (key.kind == Kind::List || key.kind == Kind::Dict || key.is_undefined())
          throw EvalError("unhashable type: '" + key.type_name() + "'");
        d.set(std::move(key), eval(*e.items[k + 1], f));
      }
      return Value::make_dict(std::move(d));
    }
    case Expr::Getattr: return getattr(eval(*e.items[0], f), e.name);
    case Expr::Getitem: {
      Value obj = eval(*e.items[0], f);
      const Expr& k = *e.items[1];
      if (k.type == Expr::Slice) {
        if (obj.is_undefined()) undefined_error(obj);
        Value parts[3];
        for (int j = 0; j < 3; ++j) parts[j] = k.items[size_t(j)] ? eval(*k.items[size_t(j)], f) : Value::none();
        if (obj.is_string()) {
          auto cps = utf8_decode(obj.s);
          std::vector<uint32_t> sel;
          for (size_t idx : slice_indices(int64_t(cps.size()), parts[0], parts[1], parts[2])) sel.push_back(cps[idx]);
          return Value::string(utf8_encode(sel));
        }
        if (obj.is_sequence()) {  // (not a generator or view: those cannot be sliced)
          List l;
          for (size_t idx : slice_indices(int64_t(obj.list->size()), parts[0], parts[1], parts[2]))
            l.push_back((*obj.list)[idx]);
          return obj.kind == Kind::List ? Value::make_list(std::move(l)) : Value::make_tuple(std::move(l));
        }
        return Value::undefined("'" + object_type_repr(obj) + "' cannot be sliced");
      }
      return getitem(obj, eval(k, f));
    }
    case Expr::Slice: throw EvalError("a slice outside of a subscript");
    case Expr::Call: {
      Value fn = eval(*e.items[0], f);
      Args args;
      collect_args(e, 1, f, args);
      return call(fn, args);
    }
    case Expr::Filter: {
      Value input = e.items[0] ? eval(*e.items[0], f) : Value::undefined();
      Args args;
      collect_args(e, 1, f, args);
      return filter(e.name, std::move(input), args);
    }
    case Expr::Test: {
      Value v = eval(*e.items[0], f);
      Args args;
      collect_args(e, 1, f, args);
      bool r = test(e.name, v, args);
      return Value::boolean(e.negated ? !r : r);
    }
    case Expr::Neg:
    case Expr::Pos: {
      Value v = eval(*e.items[0], f);
      if (v.is_undefined()) undefined_error(v);
      if (!v.is_number())
        throw EvalError(std::string("bad operand type for unary ") + (e.type == Expr::Neg ? "-" : "+") + ": '" +
                        v.type_name() + "'");
      if (e.type == Expr::Pos) return v.kind == Kind::Bool ? Value::integer(v.as_int()) : v;
      if (v.kind == Kind::Float) return Value::number(-v.f);
      if (v.as_int() == INT64_MIN) throw EvalError("integer overflow (lmlab's integers are 64-bit)");
      return Value::integer(-v.as_int());
    }
    case Expr::Not: return Value::boolean(!eval(*e.items[0], f).truthy());
    case Expr::Binary: {
      Value a = eval(*e.items[0], f);
      Value b = eval(*e.items[1], f);
      return binary_op(e.name, a, b);
    }
    case Expr::Concat: {
      std::string s;
      for (const auto& x : e.items) s += to_str(eval(*x, f));
      return Value::string(std::move(s));
    }
    case Expr::Compare: {
      Value left = eval(*e.items[0], f);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.items[k + 1], f);
        const std::string& op = e.ops[k];
        bool r;
        if (op == "==") r = equal(left, right);
        else if (op == "!=") r = !equal(left, right);
        else if (op == "in") r = contains(right, left);
        else if (op == "notin") r = !contains(right, left);
        else {
          if (left.is_undefined()) undefined_error(left);
          if (right.is_undefined()) undefined_error(right);
          try {
            if (op == "<") r = less(left, right);
            else if (op == ">") r = less(right, left);
            else if (op == "<=") r = !less(right, left);
            else r = !less(left, right);
          } catch (const TemplateError& err) {
            std::string m = err.what();
            auto p = m.find("'<'");
            if (p != std::string::npos) m.replace(p, 3, "'" + op + "'");
            throw EvalError(m);
          }
        }
        if (!r) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Expr::And: {
      Value a = eval(*e.items[0], f);
      return a.truthy() ? eval(*e.items[1], f) : a;
    }
    case Expr::Or: {
      Value a = eval(*e.items[0], f);
      return a.truthy() ? a : eval(*e.items[1], f);
    }
    case Expr::CondExpr: {
      if (eval(*e.items[0], f).truthy()) return eval(*e.items[1], f);
      if (e.items[2]) return eval(*e.items[2], f);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  throw EvalError("unknown expression");
}

void Interp::assign(const ast::Target& t, const Value& v, const FramePtr& f, int line) {
  if (!t.ns_attr.empty()) {
    const Value* ns = f->find(t.names[0]);
    if (!ns || ns->kind != Kind::Object || !ns->obj->set_attr(t.ns_attr, v))
      fail(line, "cannot assign attribute on non-namespace object");
    return;
  }
  if (!t.tuple) {
    f->vars[t.names[0]] = v;
    return;
  }
  std::vector<Value> items;
  try {
    items = iterate(v);
  } catch (const EvalError& err) {
    fail(line, std::string("cannot unpack non-iterable ") + v.type_name() + " object");
  }
  if (items.size() != t.names.size())
    fail(line, items.size() < t.names.size()
                   ? "not enough values to unpack (expected " + std::to_string(t.names.size()) + ", got " + std::to_string(items.size()) + ")"
                   : "too many values to unpack (expected " + std::to_string(t.names.size()) + ")");
  for (size_t k = 0; k < items.size(); ++k) f->vars[t.names[k]] = items[k];
}

std::string Interp::capture(const ast::Body& body, const FramePtr& f) {
  std::string buf;
  std::string* saved = out_;
  out_ = &buf;
  try {
    exec(body, f);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buf;
}

Value Interp::make_macro(const Stmt& s, const FramePtr& closure, const std::string& name) {
  auto c = std::make_shared<Callable>();
  c->name = name;
  const Stmt* node = &s;
  // Weak: the frame holds the macro, so a strong reference would be a cycle. A macro is only
  // called while its defining scope runs (templates cannot return a macro from its scope).
  std::weak_ptr<Frame> weak = closure;
  c->fn = [this, node, weak, name](Args& args) -> Value {
    auto fr = std::make_shared<Frame>();
    fr->parent = weak.lock();
    if (!fr->parent) throw EvalError("macro '" + name + "' called after the scope that defined it ended");
    const auto& params = node->params;
    if (args.pos.size() > params.size() && !node->uses_varargs)
      throw EvalError("macro '" + name + "' takes not more than " + std::to_string(params.size()) + " argument(s)");
    std::vector<bool> set(params.size(), false);
    for (size_t k = 0; k < std::min(args.pos.size(), params.size()); ++k) {
      fr->vars[params[k].name] = args.pos[k];
      set[k] = true;
    }
    Dict extra_kw;
    for (auto& kv : args.kw) {
      const std::string& key = kv.first;
      const Value& v = kv.second;
      auto it = std::find_if(params.begin(), params.end(), [&](const ast::MacroParam& p) { return p.name == key; });
      if (it != params.end()) {
        size_t k = size_t(it - params.begin());
        if (set[k]) throw EvalError("macro '" + name + "' got multiple values for argument '" + key + "'");
        fr->vars[key] = v;
        set[k] = true;
      } else if (key == "caller" && node->uses_caller) {
        fr->vars["caller"] = v;
      } else if (node->uses_kwargs) {
        extra_kw.set(Value::string(key), v);
      } else {
        throw EvalError("macro '" + name + "' takes no keyword argument '" + key + "'");
      }
    }
    for (size_t k = 0; k < params.size(); ++k) {
      if (set[k]) continue;
      if (params[k].def) fr->vars[params[k].name] = eval(*params[k].def, fr);
      else fr->vars[params[k].name] = Value::undefined("parameter '" + params[k].name + "' was not provided");
    }
    if (node->uses_varargs) {
      List rest;
      for (size_t k = params.size(); k < args.pos.size(); ++k) rest.push_back(args.pos[k]);
      fr->vars["varargs"] = Value::make_tuple(std::move(rest));
    }
    if (node->uses_kwargs) fr->vars["kwargs"] = Value::make_dict(std::move(extra_kw));
    return Value::string(capture(node->body, fr));
  };
  return Value::callable(std::move(c));
}

Interp::Flow Interp::exec(const ast::Body& body, const FramePtr& f) {
  for (const auto& s : body) {
    Flow fl = exec_stmt(*s, f);
    if (fl != Flow::Normal) return fl;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec_stmt(const Stmt& s, const FramePtr& f) {
  auto child = [&]() {
    auto c = std::make_shared<Frame>();
    c->parent = f;
    return c;
  };
  auto apply_filters = [&](const Expr* chain, Value input, const FramePtr& fr) -> Value {
    // a filter chain whose innermost input is the captured body (items[0] == null)
    std::vector<const Expr*> links;
    for (const Expr* x = chain; x; x = x->items[0].get()) links.push_back(x);
    for (auto it = links.rbegin(); it != links.rend(); ++it) {
      Args args;
      try {
        collect_args(**it, 1, fr, args);
        input = filter((*it)->name, std::move(input), args);
      } catch (const EvalError& err) {
        fail((*it)->line, err.what());
      }
    }
    return input;
  };
  switch (s.type) {
    case Stmt::Output: *out_ += s.text; return Flow::Normal;
    case Stmt::Print:
      *out_ += to_str(eval(*s.expr, f));
      if (out_->size() > kMaxOutput) fail(s.line, "the template's output passed " + std::to_string(kMaxOutput >> 20) + " MiB");
      return Flow::Normal;
    case Stmt::If:
      for (const auto& [test, body] : s.branches)
        if (eval(*test, f).truthy()) return exec(body, f);
      return exec(s.else_body, f);
    case Stmt::For: {
      Value seq = eval(*s.expr, f);
      std::vector<Value> items;
      try {
        items = iterate(seq);
      } catch (const EvalError& err) {
        fail(s.line, err.what());
      }
      if (s.cond) {
        std::vector<Value> kept;
        for (auto& x : items) {
          auto fr = child();
          assign(s.target, x, fr, s.line);
          if (eval(*s.cond, fr).truthy()) kept.push_back(std::move(x));
        }
        items = std::move(kept);
      }
      if (items.empty()) {
        exec(s.else_body, child());
        return Flow::Normal;
      }
      auto loop = std::make_shared<LoopObject>();
      loop->items = items;
      {
        auto cyc = std::make_shared<Callable>();
        cyc->name = "loop.cycle";
        LoopObject* lp = loop.get();
        cyc->fn = [lp](Args& a) -> Value {
          if (a.pos.empty()) throw EvalError("no items for cycling given");
          return a.pos[lp->index % a.pos.size()];
        };
        loop->cycle_fn = cyc;
        auto chg = std::make_shared<Callable>();
        chg->name = "loop.changed";
        chg->fn = [lp](Args& a) -> Value {
          bool changed = !lp->changed_init || lp->last_changed.size() != a.pos.size();
          for (size_t k = 0; !changed && k < a.pos.size(); ++k) changed = !equal(lp->last_changed[k], a.pos[k]);
          lp->changed_init = true;
          lp->last_changed = a.pos;
          return Value::boolean(changed);
        };
        loop->changed_fn = chg;
      }
      Value loop_v = Value::object(loop);
      for (size_t k = 0; k < items.size(); ++k) {
        try {
          step();
        } catch (const EvalError& err) {
          fail(s.line, err.what());
        }
        loop->index = k;
        auto fr = child();
        fr->vars["loop"] = loop_v;
        assign(s.target, items[k], fr, s.line);
        Flow fl = exec(s.body, fr);
        if (fl == Flow::Break) break;
      }
      return Flow::Normal;
    }
    case Stmt::Set: assign(s.target, eval(*s.expr, f), f, s.line); return Flow::Normal;
    case Stmt::SetBlock: {
      Value v = Value::string(capture(s.body, child()));
      if (s.expr) v = apply_filters(s.expr.get(), std::move(v), f);
      assign(s.target, v, f, s.line);
      return Flow::Normal;
    }
    case Stmt::Macro: f->vars[s.text] = make_macro(s, f, s.text); return Flow::Normal;
    case Stmt::CallBlock: {
      const Expr& call_e = *s.expr;
      try {
        Value fn = eval(*call_e.items[0], f);
        Args args;
        collect_args(call_e, 1, f, args);
        args.kw.emplace_back("caller", make_macro(s, f, "caller"));
        *out_ += to_str(call(fn, args));
      } catch (const EvalError& err) {
        fail(s.line, err.what());
      }
      return Flow::Normal;
    }
    case Stmt::FilterBlock: {
      Value v = Value::string(capture(s.body, child()));
      *out_ += to_str(apply_filters(s.expr.get(), std::move(v), f));
      return Flow::Normal;
    }
    case Stmt::With: {
      auto fr = child();
      std::vector<Value> vals;
      for (const auto& [t, x] : s.assigns) vals.push_back(eval(*x, f));
      for (size_t k = 0; k < vals.size(); ++k) assign(s.assigns[k].first, vals[k], fr, s.line);
      return exec(s.body, fr) == Flow::Break ? Flow::Break : Flow::Normal;
    }
    case Stmt::Scope: {
      Flow fl = exec(s.body, child());
      return fl;
    }
    case Stmt::Break: return Flow::Break;
    case Stmt::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

std::string Interp::render(const std::vector<ast::StmtPtr>& body, const Dict& vars) {
  auto root = std::make_shared<Frame>();
  for (auto& [k, v] : builtin_globals(*this).items) root->vars[k.s] = v;
  for (const auto& [k, v] : vars.items) {
    if (!k.is_string()) throw TemplateError("template variable names must be strings");
    root->vars[k.s] = v;
  }
  std::string out;
  out_ = &out;
  try {
    exec(body, root);
  } catch (const EvalError& err) {  // from a statement with no expression to blame
    throw TemplateError(name_ + ": " + err.what());
  }
  // Frames hold macros that capture frames: break the cycles so they are freed.
  root->vars.clear();
  return out;
}

std::string Template::render(const Dict& vars) const {
  Interp in(name_);
  return in.render(*body_, vars);
}

}  // namespace lmlab::jinja
