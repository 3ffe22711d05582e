// The interpreter of the Jinja engine (internal to lmlab/chat): frames, evaluation, and the hooks
// the builtins (filters, tests, methods, globals) need.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lmlab/chat/jinja_ast.h"
#include "lmlab/chat/jinja_value.h"

namespace lmlab::jinja {

// A failure inside an operation, before the interpreter adds "<template>:<line>: ".
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// raise_exception(msg): reaches the caller with exactly msg.
struct RaisedError : TemplateError {
  using TemplateError::TemplateError;
};

bool has_filter(std::string_view name);
bool has_test(std::string_view name);
// jinja2 filters lmlab does not implement (groupby, urlize, ...): named as unsupported.
bool unsupported_filter(std::string_view name);

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using FramePtr = std::shared_ptr<Frame>;

class Interp {
 public:
  enum class Flow { Normal, Break, Continue };

  explicit Interp(std::string name) : name_(std::move(name)) {}

  std::string render(const std::vector<ast::StmtPtr>& body, const Dict& vars);

  Value eval(const ast::Expr& e, const FramePtr& f);
  Flow exec(const ast::Body& body, const FramePtr& f);
  // Renders body into a string (block set, filter blocks, macros, caller).
  std::string capture(const ast::Body& body, const FramePtr& f);

  // jinja2's sandboxed getattr (attribute, then item) and getitem (item, then attribute).
  Value getattr(const Value& obj, std::string_view name);
  Value getitem(const Value& obj, const Value& key);
  Value call(const Value& fn, Args& args);
  Value filter(std::string_view name, Value input, Args& args);
  bool test(std::string_view name, const Value& v, Args& args);
  // Python's iter(): list, tuple, dict keys, string characters; Undefined iterates as empty.
  std::vector<Value> iterate(const Value& v);

 private:
  std::string name_;
  std::string* out_ = nullptr;
  int depth_ = 0;
  int64_t steps_ = 0;  // loop iterations and calls so far (bounded: kMaxSteps)
  void step();

  [[noreturn]] void fail(int line, const std::string& msg) const;
  Value eval_inner(const ast::Expr& e, const FramePtr& f);
  Flow exec_stmt(const ast::Stmt& s, const FramePtr& f);
  void assign(const ast::Target& t, const Value& v, const FramePtr& f, int line);
  void collect_args(const ast::Expr& e, size_t first, const FramePtr& f, Args& args);
  Value make_macro(const ast::Stmt& s, const FramePtr& closure, const std::string& name);
};

// Builtins (jinja_builtins.cpp).
Value builtin_filter(Interp& in, std::string_view name, Value input, Args& args);
bool builtin_test(Interp& in, std::string_view name, const Value& v, Args& args);
// A method of a str, dict or list value (nullopt: no such method).
std::optional<Value> builtin_method(const Value& obj, std::string_view name);
// True for the methods that mutate a list or dict (the immutable sandbox refuses them).
bool is_mutating_method(const Value& obj, std::string_view name);
Dict builtin_globals(Interp& in);

// Python's binary operators on values (+ - * / // % **).
Value binary_op(std::string_view op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);
// markupsafe's escape: & < > " ' as entities.
std::string html_escape(const std::string& s);

}  // namespace lmlab::jinja
