#include "core/text/jinja/interpreter.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/text/utf8.h"
#include "kernels/common/check.h"

namespace qwen3moe::jinja {
namespace {

// Python's str.isspace() for one code point.
bool py_space(char32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85) return true;
  if (cp < 0x80) return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

std::u32string to_u32(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const size_t len = utf8::valid_char_length(s, i);
    if (len == 0) {  // cannot happen for checked input; keep the byte's value
      out.push_back(static_cast<unsigned char>(s[i++]));
      continue;
    }
    out.push_back(utf8::decode(s, i, len));
    i += len;
  }
  return out;
}

std::string from_u32(std::u32string_view s) {
  std::string out;
  for (char32_t c : s) utf8::append(out, c);
  return out;
}

// str.strip / lstrip / rstrip with Python's semantics: chars = none means whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::u32string u = to_u32(s);
  std::u32string set;
  const bool whitespace = chars.is_undefined() || chars.is_none();
  if (!whitespace) set = to_u32(chars.as_string());
  auto strip_it = [&](char32_t c) {
    return whitespace ? py_space(c) : set.find(c) != std::u32string::npos;
  };
  size_t b = 0, e = u.size();
  if (left) {
    while (b < e && strip_it(u[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(u[e - 1])) --e;
  }
  return from_u32(std::u32string_view(u).substr(b, e - b));
}

List py_split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_undefined() || sep.is_none()) {
    const std::u32string u = to_u32(s);
    size_t i = 0;
    while (true) {
      while (i < u.size() && py_space(u[i])) ++i;
      if (i == u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = u.size();
        while (e > i && py_space(u[e - 1])) --e;
        out.emplace_back(from_u32(std::u32string_view(u).substr(i, e - i)));
        break;
      }
      size_t j = i;
      while (j < u.size() && !py_space(u[j])) ++j;
      out.emplace_back(from_u32(std::u32string_view(u).substr(i, j - i)));
      i = j;
    }
    return out;
  }
  const std::string& d = sep.as_string();
  QWEN3MOE_CHECK(!d.empty(), "chat template: split() with an empty separator");
  size_t start = 0;
  while (true) {
    const size_t at = s.find(d, start);
    if (at == std::string::npos ||
        (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit)) {
      out.emplace_back(s.substr(start));
      return out;
    }
    out.emplace_back(s.substr(start, at - start));
    start = at + d.size();
  }
}

// Python slice semantics for a sequence of length n.
std::vector<size_t> slice_indices(int64_t n, const Value& start_v, const Value& stop_v,
                                  const Value& step_v) {
  const int64_t step = step_v.is_undefined() || step_v.is_none() ? 1 : step_v.as_int();
  QWEN3MOE_CHECK(step != 0, "chat template: slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t dflt) {
    if (v.is_undefined() || v.is_none()) return dflt;
    int64_t i = v.as_int();
    if (i < 0) i += n;
    if (step > 0) return std::clamp<int64_t>(i, 0, n);
    return std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t start = clamp(start_v, step > 0 ? 0 : n - 1);
  const int64_t stop = clamp(stop_v, step > 0 ? n : -1);
  std::vector<size_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    out.push_back(static_cast<size_t>(i));
  }
  return out;
}

struct BreakSignal {};
struct ContinueSignal {};

class Interpreter {
 public:
  explicit Interpreter(const Dict& globals) {
    scopes_.emplace_back();
    for (const auto& [k, v] : globals) scopes_.back()[k] = v;
    auto define = [&](const char* name) {
      if (!scopes_.back().count(name)) scopes_.back()[name] = Value::function(name);
    };
    define("raise_exception");
    define("namespace");
    define("range");
  }

  void run(const Body& body) {
    for (const auto& node : body) exec(*node);
  }
  std::string take_output() { return std::move(out_); }

 private:
  using Scope = std::map<std::string, Value>;

  [[noreturn]] void fail(int line, const std::string& what) const {
    QWEN3MOE_FAIL("chat template line ", line, ": ", what);
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }

  // Bounds on one render, so a template (a hostile file, or a request's data through one) cannot
  // loop or grow without end: statements run, and bytes of output or of any one string.
  static constexpr int64_t kMaxSteps = 2'000'000;  // Qwen3's template: ~10 per message
  static constexpr size_t kMaxBytes = size_t(16) << 20;
  void check_size(int line, size_t bytes) const {
    if (bytes > kMaxBytes)
      fail(line, "the rendered text passes " + std::to_string(kMaxBytes >> 20) + " MiB");
  }

  // A namespace is the one value a template can change in place, so it is the one way to build
  // a value deeper on every turn of a loop, or one that holds itself: both are refused when set
  // (printing or comparing either would recurse without end).
  static constexpr int kMaxValueDepth = 64;
  // Every value looked at counts against the render's steps, so the check cannot cost more
  // than the budget either.
  void check_nesting(int line, const Value& v, const Dict* target, int depth) {
    if (++steps_ > kMaxSteps)
      fail(line, "the template ran more than " + std::to_string(kMaxSteps) + " statements");
    if (depth > kMaxValueDepth)
      fail(line, "a value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
    if (v.type() == Value::Type::kList) {
      for (const Value& x : v.as_list()) check_nesting(line, x, target, depth + 1);
    } else if (v.type() == Value::Type::kDict) {
      if (&v.as_dict() == target) fail(line, "a namespace cannot hold itself");
      for (const auto& [k, x] : v.as_dict()) check_nesting(line, x, target, depth + 1);
    }
  }

  void exec(const Node& n) {
    if (++steps_ > kMaxSteps)
      fail(n.line, "the template ran more than " + std::to_string(kMaxSteps) + " statements");
    switch (n.kind) {
      case Node::Kind::kText:
        out_ += n.text;
        check_size(n.line, out_.size());
        return;
      case Node::Kind::kOutput:
        out_ += eval(*n.expr).to_output();
        check_size(n.line, out_.size());
        return;
      case Node::Kind::kIf:
        for (size_t i = 0; i < n.conditions.size(); ++i) {
          if (eval(*n.conditions[i]).truthy()) {
            run(n.bodies[i]);
            return;
          }
        }
        run(n.else_body);
        return;
      case Node::Kind::kFor:
        exec_for(n);
        return;
      case Node::Kind::kSet: {
        Value v = eval(*n.expr);
        if (n.attr.empty()) {
          scopes_.back()[n.targets[0]] = std::move(v);
          return;
        }
        const Value target = lookup(n.targets[0]);
        if (!target.is_namespace()) {
          fail(n.line, "cannot set attribute '" + n.attr + "' of " + target.type_name() + " '" +
                           n.targets[0] + "' (only namespace() objects)");
        }
        Dict& d = target.mutable_dict();
        check_nesting(n.line, v, &d, 0);
        for (auto& [k, old] : d) {
          if (k == n.attr) {
            old = std::move(v);
            return;
          }
        }
        d.emplace_back(n.attr, std::move(v));
        return;
      }
      case Node::Kind::kBreak:
        throw BreakSignal{};
      case Node::Kind::kContinue:
        throw ContinueSignal{};
      case Node::Kind::kBlock:
        run(n.body);
        return;
    }
  }

  void exec_for(const Node& n) {
    const Value iterable = eval(*n.expr);
    List items;
    switch (iterable.type()) {
      case Value::Type::kList:
        items = iterable.as_list();
        break;
      case Value::Type::kDict:
        for (const auto& [k, v] : iterable.as_dict()) items.emplace_back(k);
        break;
      case Value::Type::kString:
        for (char32_t c : to_u32(iterable.as_string())) items.emplace_back(from_u32({&c, 1}));
        break;
      case Value::Type::kUndefined:
        fail(n.line, "for loop over an undefined value");
      case Value::Type::kNone:
        fail(n.line, "for loop over none");
      default:
        fail(n.line, "cannot loop over a " + iterable.type_name());
    }
    scopes_.emplace_back();
    if (n.filter) {
      List kept;
      for (const Value& item : items) {
        if (++steps_ > kMaxSteps)
          fail(n.line, "the template ran more than " + std::to_string(kMaxSteps) + " statements");
        bind_targets(n, item);
        if (eval(*n.filter).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      // An iteration is a step even with an empty body: nested empty loops must end too.
      if (++steps_ > kMaxSteps)
        fail(n.line, "the template ran more than " + std::to_string(kMaxSteps) + " statements");
      scopes_.back().clear();
      bind_targets(n, items[i]);
      Dict loop = {{"index", Value(i + 1)},
                   {"index0", Value(i)},
                   {"revindex", Value(length - i)},
                   {"revindex0", Value(length - i - 1)},
                   {"first", Value(i == 0)},
                   {"last", Value(i == length - 1)},
                   {"length", Value(length)},
                   {"previtem", i > 0 ? items[i - 1] : Value()},
                   {"nextitem", i + 1 < length ? items[i + 1] : Value()},
                   {"depth", Value(1)},
                   {"depth0", Value(0)}};
      scopes_.back()["loop"] = Value(std::move(loop));
      try {
        run(n.body);
      } catch (const BreakSignal&) {
        break;
      } catch (const ContinueSignal&) {
        continue;
      }
    }
    scopes_.pop_back();
    if (length == 0) run(n.else_body);
  }

  void bind_targets(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = item;
      return;
    }
    if (item.type() != Value::Type::kList || item.as_list().size() != n.targets.size()) {
      fail(n.line, "cannot unpack " + item.type_name() + " into " +
                       std::to_string(n.targets.size()) + " loop variables");
    }
    for (size_t k = 0; k < n.targets.size(); ++k) scopes_.back()[n.targets[k]] = item.as_list()[k];
  }

  static void require_defined(const Expr& e, const Value& v, const std::string& what) {
    if (v.is_undefined()) {
      QWEN3MOE_FAIL("chat template line ", e.line, ": undefined value in ", what);
    }
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kList: {
        List l;
        for (const auto& item : e.items) l.push_back(eval(*item));
        return e.name == "tuple" ? Value::tuple(std::move(l)) : Value(std::move(l));
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const Value k = eval(*e.items[i]);
          if (!k.is_string()) fail(e.line, "dict keys must be strings, not " + k.type_name());
          d.emplace_back(k.as_string(), eval(*e.items[i + 1]));
        }
        return Value(std::move(d));
      }
      case Expr::Kind::kAttr: {
        const Value obj = eval(*e.a);
        if (obj.is_undefined()) fail(e.line, "attribute '" + e.name + "' of an undefined value");
        if (obj.type() == Value::Type::kDict) return obj.get(e.name);
        return Value();  // methods are handled by kCall; other attributes are undefined
      }
      case Expr::Kind::kItem:
        return subscript(e, eval(*e.a), eval(*e.b));
      case Expr::Kind::kSlice: {
        const Value obj = eval(*e.a);
        const Value start = e.b ? eval(*e.b) : Value();
        const Value stop = e.c ? eval(*e.c) : Value();
        const Value step = e.items.empty() ? Value() : eval(*e.items[0]);
        for (const Value* v : {&start, &stop, &step}) {
          if (!v->is_undefined() && !v->is_none() && v->type() != Value::Type::kInt) {
            fail(e.line, "slice indices must be integers, not " + v->type_name());
          }
        }
        if (obj.type() == Value::Type::kList) {
          List out;
          for (size_t i :
               slice_indices(static_cast<int64_t>(obj.as_list().size()), start, stop, step)) {
            out.push_back(obj.as_list()[i]);
          }
          return Value(std::move(out));
        }
        if (obj.is_string()) {
          const std::u32string u = to_u32(obj.as_string());
          std::u32string out;
          for (size_t i : slice_indices(static_cast<int64_t>(u.size()), start, stop, step)) {
            out.push_back(u[i]);
          }
          return Value(from_u32(out));
        }
        fail(e.line, "cannot slice a " + obj.type_name());
      }
      case Expr::Kind::kCall:
        return call(e);
      case Expr::Kind::kFilter:
        return filter(e);
      case Expr::Kind::kTest: {
        const bool r = test(e);
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.a);
        if (e.name == "not") return Value(!v.truthy());
        require_defined(e, v, "unary '" + e.name + "'");
        if (v.type() == Value::Type::kInt) {
          if (e.name == "-" && v.as_int() == INT64_MIN) fail(e.line, "integer overflow in '-'");
          return Value(e.name == "-" ? -v.as_int() : v.as_int());
        }
        if (v.type() == Value::Type::kFloat) {
          return Value(e.name == "-" ? -v.as_float() : v.as_float());
        }
        fail(e.line, "bad operand type for unary " + e.name + ": " + v.type_name());
      }
      case Expr::Kind::kBinary:
        return binary(e);
      case Expr::Kind::kCondition:
        if (eval(*e.a).truthy()) return eval(*e.b);
        return e.c ? eval(*e.c) : Value();
    }
    fail(e.line, "unknown expression");
  }

  Value subscript(const Expr& e, const Value& obj, const Value& key) {
    if (obj.is_undefined()) fail(e.line, "subscript of an undefined value");
    if (obj.type() == Value::Type::kDict) {
      if (!key.is_string()) return Value();
      return obj.get(key.as_string());
    }
    if (obj.type() == Value::Type::kList || obj.is_string()) {
      if (key.type() != Value::Type::kInt) {
        fail(e.line, obj.type_name() + " indices must be integers, not " + key.type_name());
      }
      if (obj.is_string()) {
        const std::u32string u = to_u32(obj.as_string());
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(u.size());
        if (i < 0 || i >= static_cast<int64_t>(u.size())) return Value();
        return Value(from_u32(std::u32string_view(u).substr(static_cast<size_t>(i), 1)));
      }
      const List& l = obj.as_list();
      int64_t i = key.as_int();
      if (i < 0) i += static_cast<int64_t>(l.size());
      if (i < 0 || i >= static_cast<int64_t>(l.size())) return Value();
      return l[static_cast<size_t>(i)];
    }
    fail(e.line, "cannot subscript a " + obj.type_name());
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.a);
      return l.truthy() ? eval(*e.b) : l;
    }
    if (op == "or") {
      Value l = eval(*e.a);
      return l.truthy() ? l : eval(*e.b);
    }
    const Value l = eval(*e.a);
    const Value r = eval(*e.b);
    if (op == "==") return Value(l == r);
    if (op == "!=") return Value(!(l == r));
    if (op == "~") {
      std::string joined = l.to_output() + r.to_output();
      check_size(e.line, joined.size());
      return Value(std::move(joined));
    }
    if (op == "in" || op == "not in") {
      bool found = false;
      if (r.is_string()) {
        if (!l.is_string()) {
          fail(e.line, "'in <string>' requires a string on the left, not " + l.type_name());
        }
        found = r.as_string().find(l.as_string()) != std::string::npos;
      } else if (r.type() == Value::Type::kList) {
        found = std::find(r.as_list().begin(), r.as_list().end(), l) != r.as_list().end();
      } else if (r.type() == Value::Type::kDict) {
        found = l.is_string() && !r.get(l.as_string()).is_undefined();
      } else {
        fail(e.line, "argument of type " + r.type_name() + " is not iterable");
      }
      return Value(op == "in" ? found : !found);
    }
    require_defined(e, l, "'" + op + "'");
    require_defined(e, r, "'" + op + "'");
    if (op == "+" && l.is_string() && r.is_string()) {
      check_size(e.line, l.as_string().size() + r.as_string().size());
      return Value(l.as_string() + r.as_string());
    }
    if (op == "+" && l.type() == Value::Type::kList && r.type() == Value::Type::kList) {
      if (l.as_list().size() + r.as_list().size() > (size_t(1) << 20))
        fail(e.line, "a list of more than 1048576 items");
      List out = l.as_list();
      out.insert(out.end(), r.as_list().begin(), r.as_list().end());
      return Value(std::move(out));
    }
    if (op == "*" && l.is_string() && r.type() == Value::Type::kInt) {
      const int64_t n = std::max<int64_t>(r.as_int(), 0);
      if (n > 0 && l.as_string().size() > 0)
        check_size(e.line,
                   n > int64_t(kMaxBytes) ? kMaxBytes + 1 : size_t(n) * l.as_string().size());
      std::string out;
      for (int64_t i = 0; i < n; ++i) out += l.as_string();
      return Value(std::move(out));
    }
    const bool numbers = (l.is_number() || l.type() == Value::Type::kBool) &&
                         (r.is_number() || r.type() == Value::Type::kBool);
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int cmp;
      if (numbers) {
        cmp = l.as_float() < r.as_float() ? -1 : l.as_float() > r.as_float() ? 1 : 0;
      } else if (l.is_string() && r.is_string()) {
        cmp = l.as_string().compare(r.as_string());
      } else {
        fail(e.line,
             "'" + op + "' not supported between " + l.type_name() + " and " + r.type_name());
      }
      if (op == "<") return Value(cmp < 0);
      if (op == ">") return Value(cmp > 0);
      if (op == "<=") return Value(cmp <= 0);
      return Value(cmp >= 0);
    }
    if (!numbers) {
      fail(e.line,
           "unsupported operand types for " + op + ": " + l.type_name() + " and " + r.type_name());
    }
    const bool ints = l.type() != Value::Type::kFloat && r.type() != Value::Type::kFloat;
    const int64_t a = l.as_int(), b = r.as_int();
    const double x = l.as_float(), y = r.as_float();
    // Integers as Python has them would grow without bound; here they are int64 and an
    // overflow is an error, never a wrapped value (nor undefined behaviour).
    int64_t r64 = 0;
    auto overflow = [&] { fail(e.line, "integer overflow in '" + op + "'"); };
    if (op == "+") {
      if (!ints) return Value(x + y);
      if (__builtin_add_overflow(a, b, &r64)) overflow();
      return Value(r64);
    }
    if (op == "-") {
      if (!ints) return Value(x - y);
      if (__builtin_sub_overflow(a, b, &r64)) overflow();
      return Value(r64);
    }
    if (op == "*") {
      if (!ints) return Value(x * y);
      if (__builtin_mul_overflow(a, b, &r64)) overflow();
      return Value(r64);
    }
    if (op == "/") {
      if (y == 0) fail(e.line, "division by zero");
      return Value(x / y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) fail(e.line, "division by zero");
      if (ints) {
        if (a == INT64_MIN && b == -1) overflow();
        int64_t q = a / b, m = a % b;
        if (m != 0 && ((m < 0) != (b < 0))) {
          --q;
          m += b;
        }
        return op == "//" ? Value(q) : Value(m);
      }
      const double q = std::floor(x / y);
      return op == "//" ? Value(q) : Value(x - q * y);
    }
    if (op == "**") {
      if (ints && b >= 0) {
        // By squaring, each product checked: 1 ** 2**63 takes 63 steps, not 2**63.
        int64_t p = 1, base = a;
        for (int64_t k = b; k > 0; k >>= 1) {
          if ((k & 1) && __builtin_mul_overflow(p, base, &p)) overflow();
          // A higher bit is left, and it will multiply in base squared.
          if (k > 1 && __builtin_mul_overflow(base, base, &base)) overflow();
        }
        return Value(p);
      }
      return Value(std::pow(x, y));
    }
    fail(e.line, "unsupported operator '" + op + "'");
  }

  // Positional and keyword arguments of a call, filter or test.
  struct Args {
    List positional;
    Dict keywords;
    Value get(size_t i, const std::string& name) const {
      if (i < positional.size()) return positional[i];
      for (const auto& [k, v] : keywords) {
        if (k == name) return v;
      }
      return Value();
    }
  };
  Args eval_args(const Expr& e) {
    Args args;
    for (const auto& a : e.items) args.positional.push_back(eval(*a));
    for (size_t i = 0; i < e.kw_names.size(); ++i) {
      args.keywords.emplace_back(e.kw_names[i], eval(*e.kw_values[i]));
    }
    return args;
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.a;
    if (callee.kind == Expr::Kind::kAttr) {
      const Value obj = eval(*callee.a);
      if (obj.is_string() || (obj.type() == Value::Type::kDict && !obj.is_namespace()) ||
          obj.type() == Value::Type::kList) {
        // A dict's key holding a function would be called here too; templates do not do that.
        return method(e, obj, callee.name, eval_args(e));
      }
      if (obj.is_undefined()) fail(e.line, "method '" + callee.name + "' of an undefined value");
      fail(e.line, "unsupported method '" + callee.name + "' on " + obj.type_name());
    }
    const Value fn = eval(callee);
    if (fn.type() != Value::Type::kFunction) {
      fail(e.line, (callee.kind == Expr::Kind::kName ? "unknown function '" + callee.name + "'"
                                                     : "cannot call a " + fn.type_name()));
    }
    const Args args = eval_args(e);
    const std::string& name = fn.as_string();
    if (name == "raise_exception") {
      QWEN3MOE_FAIL("chat template raised an exception: ", args.get(0, "message").to_output());
    }
    if (name == "namespace") {
      Dict d;
      for (const Value& p : args.positional) {
        if (p.type() != Value::Type::kDict) fail(e.line, "namespace() takes keyword arguments");
        d.insert(d.end(), p.as_dict().begin(), p.as_dict().end());
      }
      d.insert(d.end(), args.keywords.begin(), args.keywords.end());
      return Value::namespace_of(std::move(d));
    }
    if (name == "range") {
      int64_t start = 0, stop = 0, step = 1;
      if (args.positional.size() == 1) {
        stop = args.positional[0].as_int();
      } else if (args.positional.size() >= 2) {
        start = args.positional[0].as_int();
        stop = args.positional[1].as_int();
        if (args.positional.size() >= 3) step = args.positional[2].as_int();
      }
      if (step == 0) fail(e.line, "range() step cannot be zero");
      // The length first, in 128 bits: a range of 10**18 is an error, not a hang.
      const __int128 span = step > 0 ? __int128(stop) - start : __int128(start) - stop;
      const __int128 step_abs = step > 0 ? __int128(step) : -__int128(step);
      const __int128 count = span <= 0 ? 0 : (span + step_abs - 1) / step_abs;
      constexpr int64_t kMaxRange = int64_t(1) << 20;
      if (count > kMaxRange)
        fail(e.line, "range() of more than " + std::to_string(kMaxRange) + " numbers");
      // Each number made counts as a step: a range evaluated in a loop (a for's filter) must
      // not cost more than the budget allows.
      steps_ += int64_t(count);
      if (steps_ > kMaxSteps)
        fail(e.line, "the template ran more than " + std::to_string(kMaxSteps) + " statements");
      List out;
      for (int64_t k = 0; k < int64_t(count); ++k)
        out.emplace_back(int64_t(start + __int128(k) * step));
      return Value(std::move(out));
    }
    fail(e.line, "unknown function '" + name + "'");
  }

  Value method(const Expr& e, const Value& obj, const std::string& name, const Args& args) {
    if (obj.is_string()) {
      const std::string& s = obj.as_string();
      if (name == "startswith" || name == "endswith") {
        const Value arg = args.get(0, "prefix");
        List options;
        if (arg.type() == Value::Type::kList) {
          options = arg.as_list();
        } else {
          options.push_back(arg);
        }
        for (const Value& o : options) {
          if (!o.is_string()) fail(e.line, name + "() takes strings, not " + o.type_name());
          const std::string& p = o.as_string();
          const bool hit =
              p.size() <= s.size() &&
              (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                    : s.compare(s.size() - p.size(), p.size(), p) == 0);
          if (hit) return Value(true);
        }
        return Value(false);
      }
      if (name == "strip") return Value(py_strip(s, args.get(0, "chars"), true, true));
      if (name == "lstrip") return Value(py_strip(s, args.get(0, "chars"), true, false));
      if (name == "rstrip") return Value(py_strip(s, args.get(0, "chars"), false, true));
      if (name == "split") {
        const Value maxsplit = args.get(1, "maxsplit");
        return Value(
            py_split(s, args.get(0, "sep"), maxsplit.is_undefined() ? -1 : maxsplit.as_int()));
      }
      if (name == "upper" || name == "lower") {
        std::string out;
        for (char32_t c : to_u32(s)) {
          utf8::append(out, static_cast<char32_t>(name == "upper" ? utf8proc_toupper(c)
                                                                  : utf8proc_tolower(c)));
        }
        return Value(std::move(out));
      }
      if (name == "replace") {
        const Value from = args.get(0, "old"), to = args.get(1, "new");
        if (!from.is_string() || !to.is_string()) fail(e.line, "replace() takes strings");
        const Value count_v = args.get(2, "count");
        int64_t count = count_v.is_undefined() ? -1 : count_v.as_int();
        std::string out;
        size_t pos = 0;
        const std::string& f = from.as_string();
        while (count != 0) {
          const size_t at =
              f.empty() ? (pos <= s.size() ? pos : std::string::npos) : s.find(f, pos);
          if (at == std::string::npos) break;
          out.append(s, pos, at - pos);
          out += to.as_string();
          check_size(e.line, out.size());
          if (f.empty()) {
            if (at < s.size()) out += s[at];
            pos = at + 1;
          } else {
            pos = at + f.size();
          }
          if (count > 0) --count;
        }
        if (pos < s.size()) out.append(s, pos, std::string::npos);
        return Value(std::move(out));
      }
      if (name == "find") {
        const Value sub = args.get(0, "sub");
        if (!sub.is_string()) fail(e.line, "find() takes a string");
        const size_t at = s.find(sub.as_string());
        if (at == std::string::npos) return Value(int64_t{-1});
        return Value(static_cast<int64_t>(to_u32(s.substr(0, at)).size()));
      }
      if (name == "count") {
        const Value sub = args.get(0, "sub");
        if (!sub.is_string() || sub.as_string().empty()) fail(e.line, "count() takes a string");
        int64_t n = 0;
        for (size_t at = s.find(sub.as_string()); at != std::string::npos;
             at = s.find(sub.as_string(), at + sub.as_string().size())) {
          ++n;
        }
        return Value(n);
      }
    } else if (obj.type() == Value::Type::kDict) {
      if (name == "items") {
        List out;
        for (const auto& [k, v] : obj.as_dict()) out.push_back(Value::tuple(List{Value(k), v}));
        return Value(std::move(out));
      }
      if (name == "keys") {
        List out;
        for (const auto& kv : obj.as_dict()) out.emplace_back(kv.first);
        return Value(std::move(out));
      }
      if (name == "values") {
        List out;
        for (const auto& kv : obj.as_dict()) out.push_back(kv.second);
        return Value(std::move(out));
      }
      if (name == "get") {
        const Value key = args.get(0, "key");
        Value v = key.is_string() ? obj.get(key.as_string()) : Value();
        if (!v.is_undefined()) return v;
        const Value dflt = args.get(1, "default");
        return dflt.is_undefined() ? Value::none() : dflt;
      }
    }
    fail(e.line, "unsupported method '" + name + "' on " + obj.type_name());
  }

  Value filter(const Expr& e) {
    Value v = eval(*e.a);
    const Args args = eval_args(e);
    const std::string& f = e.name;
    if (f == "length" || f == "count") {
      if (v.is_string()) return Value(static_cast<int64_t>(to_u32(v.as_string()).size()));
      if (v.type() == Value::Type::kList) return Value(static_cast<int64_t>(v.as_list().size()));
      if (v.type() == Value::Type::kDict) return Value(static_cast<int64_t>(v.as_dict().size()));
      fail(e.line, "object of type " + v.type_name() + " has no length");
    }
    if (f == "trim") {
      require_defined(e, v, "filter 'trim'");
      return Value(py_strip(v.to_output(), args.get(0, "chars"), true, true));
    }
    if (f == "tojson") {
      const Value indent = args.get(0, "indent");
      // Python's json.dumps takes any indent; a huge one only makes spaces, so it is capped.
      return Value(v.to_json(
          indent.type() == Value::Type::kInt
              ? std::optional<int>(static_cast<int>(std::clamp<int64_t>(indent.as_int(), 0, 64)))
              : std::nullopt));
    }
    if (f == "string") return Value(v.to_output());
    if (f == "safe" || f == "e" || f == "escape") {
      if (f != "safe") fail(e.line, "unsupported filter '" + f + "'");
      return v;
    }
    if (f == "lower" || f == "upper") {
      require_defined(e, v, "filter '" + f + "'");
      return method(e, Value(v.to_output()), f, Args{});
    }
    if (f == "default" || f == "d") {
      const bool boolean = args.get(1, "boolean").truthy();
      if (v.is_undefined() || (boolean && !v.truthy())) {
        const Value d = args.get(0, "default_value");
        return d.is_undefined() ? Value("") : d;
      }
      return v;
    }
    if (f == "first" || f == "last") {
      if (v.type() == Value::Type::kList) {
        if (v.as_list().empty()) return Value();
        return f == "first" ? v.as_list().front() : v.as_list().back();
      }
      if (v.is_string()) {
        const std::u32string u = to_u32(v.as_string());
        if (u.empty()) return Value();
        return Value(from_u32(std::u32string(1, f == "first" ? u.front() : u.back())));
      }
      fail(e.line, "filter '" + f + "' of a " + v.type_name());
    }
    if (f == "join") {
      if (v.type() != Value::Type::kList) fail(e.line, "filter 'join' of a " + v.type_name());
      const Value sep = args.get(0, "d");
      std::string out;
      for (size_t i = 0; i < v.as_list().size(); ++i) {
        if (i) out += sep.is_undefined() ? "" : sep.to_output();
        out += v.as_list()[i].to_output();
        check_size(e.line, out.size());
      }
      return Value(std::move(out));
    }
    if (f == "list") {
      if (v.type() == Value::Type::kList) return v;
      if (v.is_string()) {
        List out;
        for (char32_t c : to_u32(v.as_string())) out.emplace_back(from_u32({&c, 1}));
        return Value(std::move(out));
      }
      if (v.type() == Value::Type::kDict) return method(e, v, "keys", Args{});
      fail(e.line, "filter 'list' of a " + v.type_name());
    }
    if (f == "items") {
      if (v.type() != Value::Type::kDict) fail(e.line, "filter 'items' of a " + v.type_name());
      return method(e, v, "items", Args{});
    }
    if (f == "reverse") {
      if (v.type() == Value::Type::kList) {
        List out(v.as_list().rbegin(), v.as_list().rend());
        return Value(std::move(out));
      }
      if (v.is_string()) {
        std::u32string u = to_u32(v.as_string());
        std::reverse(u.begin(), u.end());
        return Value(from_u32(u));
      }
      fail(e.line, "filter 'reverse' of a " + v.type_name());
    }
    if (f == "int") {
      if (v.type() == Value::Type::kInt || v.type() == Value::Type::kBool) return Value(v.as_int());
      if (v.type() == Value::Type::kFloat) return Value(static_cast<int64_t>(v.as_float()));
      if (v.is_string())
        return Value(static_cast<int64_t>(std::strtoll(v.as_string().c_str(), nullptr, 10)));
      return Value(int64_t{0});
    }
    if (f == "capitalize") {
      require_defined(e, v, "filter 'capitalize'");
      std::u32string u = to_u32(v.to_output());
      for (size_t i = 0; i < u.size(); ++i) {
        u[i] = static_cast<char32_t>(i == 0 ? utf8proc_toupper(u[i]) : utf8proc_tolower(u[i]));
      }
      return Value(from_u32(u));
    }
    fail(e.line, "unsupported filter '" + f + "'");
  }

  bool test(const Expr& e) {
    const Value v = eval(*e.a);
    const Args args = eval_args(e);
    const std::string& t = e.name;
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.type() == Value::Type::kInt;
    if (t == "float") return v.type() == Value::Type::kFloat;
    if (t == "boolean") return v.type() == Value::Type::kBool;
    if (t == "true") return v.type() == Value::Type::kBool && v.as_bool();
    if (t == "false") return v.type() == Value::Type::kBool && !v.as_bool();
    if (t == "mapping") return v.type() == Value::Type::kDict;
    if (t == "sequence")
      return v.is_string() || v.type() == Value::Type::kList || v.type() == Value::Type::kDict;
    if (t == "iterable")
      return v.is_string() || v.type() == Value::Type::kList || v.type() == Value::Type::kDict;
    if (t == "callable") return v.type() == Value::Type::kFunction;
    if (t == "even" || t == "odd") {
      if (v.type() != Value::Type::kInt) fail(e.line, "test '" + t + "' of a " + v.type_name());
      return (v.as_int() % 2 == 0) == (t == "even");
    }
    if (t == "eq" || t == "equalto" || t == "sameas") return v == args.get(0, "other");
    if (t == "ne") return !(v == args.get(0, "other"));
    if (t == "in") {
      const Value seq = args.get(0, "seq");
      if (seq.type() == Value::Type::kList) {
        return std::find(seq.as_list().begin(), seq.as_list().end(), v) != seq.as_list().end();
      }
      if (seq.is_string() && v.is_string())
        return seq.as_string().find(v.as_string()) != std::string::npos;
      if (seq.type() == Value::Type::kDict && v.is_string())
        return !seq.get(v.as_string()).is_undefined();
      fail(e.line, "test 'in' of a " + seq.type_name());
    }
    fail(e.line, "unsupported test '" + t + "'");
  }

  std::vector<Scope> scopes_;
  std::string out_;
  int64_t steps_ = 0;
};

}  // namespace

std::string render(const Template& tpl, const Dict& globals) {
  Interpreter it(globals);
  try {
    it.run(tpl.body);
  } catch (const BreakSignal&) {
    QWEN3MOE_FAIL("chat template: 'break' outside a for loop");
  } catch (const ContinueSignal&) {
    QWEN3MOE_FAIL("chat template: 'continue' outside a for loop");
  }
  return it.take_output();
}

}  // namespace qwen3moe::jinja
