// Values of the small Jinja interpreter used for chat templates. They follow Python's (and so
// Jinja2's) semantics where a template can tell the difference: dicts keep insertion order,
// `undefined` differs from `none`, printing uses Python's spelling (True, None, 1.0), and
// tojson matches json.dumps(ensure_ascii=False) as Hugging Face's tojson filter calls it.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qwen3moe::jinja {

class Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion order, as Python's dict

class Value {
 public:
  enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value none() { return Value(Type::kNone); }
  Value(bool b) : type_(Type::kBool), int_(b) {}
  Value(int64_t i) : type_(Type::kInt), int_(i) {}
  Value(int i) : type_(Type::kInt), int_(i) {}
  Value(double d) : type_(Type::kFloat), float_(d) {}
  Value(std::string s)
      : type_(Type::kString), string_(std::make_shared<std::string>(std::move(s))) {}
  Value(const char* s) : Value(std::string(s)) {}
  Value(List l) : type_(Type::kList), list_(std::make_shared<List>(std::move(l))) {}
  Value(Dict d) : type_(Type::kDict), dict_(std::make_shared<Dict>(std::move(d))) {}
  // A built-in function, called by name (raise_exception, namespace, range).
  static Value function(std::string name) {
    Value v(std::move(name));
    v.type_ = Type::kFunction;
    return v;
  }
  // A namespace(): a dict whose attributes `set ns.x = ...` may assign.
  // A tuple: a list that Python prints with parentheses.
  static Value tuple(List l) {
    Value v(std::move(l));
    v.tuple_ = true;
    return v;
  }
  static Value namespace_of(Dict d) {
    Value v(std::move(d));
    v.namespace_ = true;
    return v;
  }
  static Value from_json(const nlohmann::ordered_json& j);

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kFloat; }
  bool is_namespace() const { return namespace_; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }
  double as_float() const { return type_ == Type::kInt ? static_cast<double>(int_) : float_; }
  const std::string& as_string() const { return *string_; }
  const List& as_list() const { return *list_; }
  const Dict& as_dict() const { return *dict_; }
  Dict& mutable_dict() const { return *dict_; }  // namespaces only

  // Dict lookup; undefined when missing.
  Value get(const std::string& key) const;

  bool truthy() const;
  // str(value) as Jinja prints it.
  std::string to_output() const;
  // Python's repr(), used inside printed lists and dicts.
  std::string repr() const;
  // json.dumps(value, ensure_ascii=False, indent=indent) with Python's default separators.
  std::string to_json(std::optional<int> indent = std::nullopt) const;
  // Name of the type for error messages ("string", "list", ...).
  std::string type_name() const;

  friend bool operator==(const Value& a, const Value& b);

 private:
  explicit Value(Type t) : type_(t) {}
  void json_into(std::string& out, std::optional<int> indent, int depth) const;
  Type type_ = Type::kUndefined;
  bool namespace_ = false;
  bool tuple_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<std::string> string_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
};

// Python's repr of a float: the shortest text that reads back the same, with ".0" for whole
// numbers and 1e+16-style exponents past 1e16.
std::string python_float(double d);

}  // namespace qwen3moe::jinja
