// The syntax tree of a Jinja template, as parsed by jinja_parser and run by jinja_interpreter.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/text/jinja/value.h"

namespace qwen3moe::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // items
    kDict,       // items as key, value, key, value...
    kAttr,       // a.name
    kItem,       // a[b]
    kSlice,      // a[b:c:d], absent parts are null
    kCall,       // a(items..., kw names/args)
    kFilter,     // a | name(items...)
    kTest,       // a is [not] name(items...)
    kUnary,      // op a            (op: "not", "-", "+")
    kBinary,     // a op b
    kCondition,  // b if a else c   (a = condition)
  };
  Kind kind;
  int line = 0;
  std::string name;  // name, attribute, filter, test, or operator
  Value value;       // literal
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;         // positional arguments / list items / dict key,value
  std::vector<std::string> kw_names;  // keyword argument names of a call, filter or test
  std::vector<ExprPtr> kw_values;
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind {
    kText,    // text
    kOutput,  // {{ expr }}
    kIf,      // branches: conditions[i] -> bodies[i]; else_body
    kFor,     // for targets in expr [if filter]: body; else_body
    kSet,     // set target[.attr] = expr
    kBreak,
    kContinue,
    kBlock,  // a plain body ({% generation %}...)
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<std::string> targets;  // for-loop variables, or set target
  std::string attr;                  // set ns.attr
};

struct Template {
  Body body;
};

}  // namespace qwen3moe::jinja
