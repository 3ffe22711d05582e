// lmlab's Jinja engine: renders Hugging Face chat templates exactly as `transformers` renders them
// with jinja2 — an ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the
// loopcontrols extension, transformers' tojson (ensure_ascii=False, json.dumps' separators),
// raise_exception, strftime_now and the {% generation %} tag.
//
// Supported: {{ }} {% %} {# #} with whitespace control (- and +), raw; if/elif/else, for (loop.*,
// else, the if-filter, tuple unpacking, break/continue), set (also block set with filters and
// namespace attributes), macro (defaults, varargs, kwargs, caller) and call blocks, filter blocks,
// with, generation; Python expressions (literals, slicing, in, ~, conditional expressions, is-tests,
// filters, calls with keyword arguments) and the filters, tests, globals and str/dict/list methods
// real templates use (jinja_builtins.cpp lists them). No template loader: extends, include, import
// and block fail with an error naming the feature and the line.
//
// Files: jinja_value.{h,cpp} (values), jinja_parse.cpp (lexer and parser), jinja_render.cpp
// (interpreter), jinja_builtins.cpp (filters, tests, methods, globals).
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "lmlab/chat/jinja_value.h"

namespace lmlab::jinja {

namespace ast {
struct Stmt;
}

class Template {
 public:
  // Parses `source`; throws TemplateError ("<name>:<line>: <problem>") on a syntax error, an
  // unknown filter or test, or an unsupported feature.
  explicit Template(std::string_view source, std::string name = "template");
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with these variables (and the globals). Throws TemplateError: raise_exception's
  // message as is, other failures as "<name>:<line>: <problem>".
  std::string render(const Dict& vars) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<std::vector<std::unique_ptr<ast::Stmt>>> body_;
};

// The date strftime_now formats: today, or LMLAB_FIXED_DATE=YYYY-MM-DD (midnight) when set, so
// that renders are reproducible.
std::string strftime_now(const std::string& format);

}  // namespace lmlab::jinja
