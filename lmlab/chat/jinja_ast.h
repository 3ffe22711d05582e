// The syntax tree of a Jinja template (internal to lmlab/chat): expressions and statements as
// jinja2's parser builds them (jinja2/nodes.py), one generic node type for each.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "lmlab/chat/jinja_value.h"

namespace lmlab::jinja::ast {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum Type {
    Const,     // value
    Name,      // name
    ListLit,   // items
    TupleLit,  // items
    DictLit,   // items: key, value, key, value, ...
    Getattr,   // items[0] . name
    Getitem,   // items[0] [ items[1] ]
    Slice,     // items: start, stop, step (each may be null)
    Call,      // items[0] ( items[1..], kwargs )
    Filter,    // items[0] | name ( items[1..], kwargs ); items[0] null in a filter block
    Test,      // items[0] is [not] name ( items[1..], kwargs )
    Neg,       // - items[0]
    Pos,       // + items[0]
    Not,       // not items[0]
    Binary,    // items[0] op items[1]   (+ - * / // % **)
    Concat,    // items joined with ~
    Compare,   // items[0] ops[0] items[1] ops[1] items[2] ...
    And,       // items[0] and items[1]
    Or,        // items[0] or items[1]
    CondExpr,  // items[1] if items[0] else items[2] (items[2] null: undefined)
  };
  Type type;
  int line = 0;
  Value value;
  std::string name;  // Name, Getattr, Filter, Test, Binary op
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args, dyn_kwargs;  // *args, **kwargs in a call
  std::vector<std::string> ops;  // Compare: ==, !=, <, <=, >, >=, in, notin
  bool negated = false;          // Test: "is not"

  Expr(Type t, int l) : type(t), line(l) {}
};

// The left side of set / for / with: one name, a tuple of names, or namespace.attr.
struct Target {
  std::vector<std::string> names;  // one name, or the names of a tuple target
  bool tuple = false;
  std::string ns_attr;  // set ns.attr = ...: names[0] is the namespace
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroParam {
  std::string name;
  ExprPtr def;  // null: required
};

struct Stmt {
  enum Type { Output, Print, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, With, Break, Continue, Scope };
  Type type;
  int line = 0;
  std::string text;                       // Output; Macro name
  ExprPtr expr;                           // Print, Set value, For iterable, CallBlock call, SetBlock/FilterBlock filter
  ExprPtr cond;                           // For: the loop's if-filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (test, body) for if and each elif
  Body body, else_body;                   // For, If (else), SetBlock, Macro, CallBlock, FilterBlock, With, Scope
  Target target;                          // Set, SetBlock, For
  std::vector<MacroParam> params;         // Macro, CallBlock (the caller's signature)
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;  // Macro, CallBlock
  std::vector<std::pair<Target, ExprPtr>> assigns;  // With

  Stmt(Type t, int l) : type(t), line(l) {}
};

}  // namespace lmlab::jinja::ast
