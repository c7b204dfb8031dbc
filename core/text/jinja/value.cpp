#include "core/text/jinja/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/text/json_string.h"
#include "kernels/common/check.h"

namespace qwen3moe::jinja {

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      for (const auto& e : j) l.push_back(from_json(e));
      return Value(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it)
        d.emplace_back(it.key(), from_json(it.value()));
      return Value(std::move(d));
    }
    default:
      QWEN3MOE_FAIL("chat template: unsupported JSON value ", j.dump());
  }
}

Value Value::get(const std::string& key) const {
  if (type_ != Type::kDict) return Value();
  for (const auto& [k, v] : *dict_) {
    if (k == key) return v;
  }
  return Value();
}

bool Value::truthy() const {
  switch (type_) {
    case Type::kUndefined:
    case Type::kNone:
      return false;
    case Type::kBool:
    case Type::kInt:
      return int_ != 0;
    case Type::kFloat:
      return float_ != 0;
    case Type::kString:
      return !string_->empty();
    case Type::kList:
      return !list_->empty();
    case Type::kDict:
      return namespace_ || !dict_->empty();
    case Type::kFunction:
      return true;
  }
  return false;
}

std::string python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  // Python switches to exponent notation outside [1e-4, 1e16).
  const double a = std::fabs(d);
  const bool exponent = a != 0 && (a < 1e-4 || a >= 1e16);
  auto res = std::to_chars(buf, buf + sizeof buf, d,
                           exponent ? std::chars_format::scientific : std::chars_format::fixed);
  std::string s(buf, res.ptr);
  if (exponent) {
    // to_chars writes 1e+16 / 1e-05; Python writes 1e+16 / 1e-05 too, so only add nothing.
    return s;
  }
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

std::string Value::to_output() const {
  switch (type_) {
    case Type::kUndefined:
      return "";
    case Type::kString:
      return *string_;
    default:
      return repr();
  }
}

static std::string python_quote(const std::string& s) {
  // repr() prefers single quotes unless the string has one and no double quote.
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = use_double ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == q || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += q;
  return out;
}

std::string Value::repr() const {
  switch (type_) {
    case Type::kUndefined:
      return "";
    case Type::kNone:
      return "None";
    case Type::kBool:
      return int_ ? "True" : "False";
    case Type::kInt:
      return std::to_string(int_);
    case Type::kFloat:
      return python_float(float_);
    case Type::kString:
      return python_quote(*string_);
    case Type::kList: {
      std::string out = tuple_ ? "(" : "[";
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i) out += ", ";
        out += (*list_)[i].repr();
      }
      if (tuple_ && list_->size() == 1) out += ",";
      return out + (tuple_ ? ")" : "]");
    }
    case Type::kDict: {
      if (namespace_) return "<Namespace>";
      std::string out = "{";
      for (size_t i = 0; i < dict_->size(); ++i) {
        if (i) out += ", ";
        out += python_quote((*dict_)[i].first) + ": " + (*dict_)[i].second.repr();
      }
      return out + "}";
    }
    case Type::kFunction:
      return "<function " + *string_ + ">";
  }
  return "";
}

void Value::json_into(std::string& out, std::optional<int> indent, int depth) const {
  const auto newline = [&](int d) {
    out += '\n';
    out.append(static_cast<size_t>(*indent) * d, ' ');
  };
  // Python's defaults: ", " and ": " without indent, "," and ": " with it.
  const char* item_sep = indent ? "," : ", ";
  switch (type_) {
    case Type::kUndefined:
      QWEN3MOE_FAIL("chat template: tojson of an undefined value");
    case Type::kNone:
      out += "null";
      return;
    case Type::kBool:
      out += int_ ? "true" : "false";
      return;
    case Type::kInt:
      out += std::to_string(int_);
      return;
    case Type::kFloat:
      out += std::isnan(float_)   ? "NaN"
             : std::isinf(float_) ? (float_ > 0 ? "Infinity" : "-Infinity")
                                  : python_float(float_);
      return;
    case Type::kString:
      append_json_string(out, *string_);
      return;
    case Type::kList:
      if (list_->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i) out += item_sep;
        if (indent) newline(depth + 1);
        (*list_)[i].json_into(out, indent, depth + 1);
      }
      if (indent) newline(depth);
      out += ']';
      return;
    case Type::kDict:
      if (dict_->empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < dict_->size(); ++i) {
        if (i) out += item_sep;
        if (indent) newline(depth + 1);
        append_json_string(out, (*dict_)[i].first);
        out += ": ";
        (*dict_)[i].second.json_into(out, indent, depth + 1);
      }
      if (indent) newline(depth);
      out += '}';
      return;
    case Type::kFunction:
      QWEN3MOE_FAIL("chat template: tojson of a function");
  }
}

std::string Value::to_json(std::optional<int> indent) const {
  std::string out;
  json_into(out, indent, 0);
  return out;
}

std::string Value::type_name() const {
  switch (type_) {
    case Type::kUndefined:
      return "undefined";
    case Type::kNone:
      return "none";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kFloat:
      return "float";
    case Type::kString:
      return "string";
    case Type::kList:
      return "list";
    case Type::kDict:
      return namespace_ ? "namespace" : "dict";
    case Type::kFunction:
      return "function";
  }
  return "?";
}

bool operator==(const Value& a, const Value& b) {
  using T = Value::Type;
  if (a.is_number() && b.is_number()) {
    if (a.type_ == T::kInt && b.type_ == T::kInt) return a.int_ == b.int_;
    return a.as_float() == b.as_float();
  }
  // Python: True == 1; bools compare as ints with numbers.
  if ((a.type_ == T::kBool && b.is_number()) || (b.type_ == T::kBool && a.is_number())) {
    return a.as_float() == b.as_float();
  }
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case T::kUndefined:
    case T::kNone:
      return true;
    case T::kBool:
      return a.int_ == b.int_;
    case T::kString:
    case T::kFunction:
      return *a.string_ == *b.string_;
    case T::kList:
      return *a.list_ == *b.list_;
    case T::kDict:
      if (a.dict_ == b.dict_) return true;
      if (a.dict_->size() != b.dict_->size()) return false;
      for (const auto& [k, v] : *a.dict_) {
        if (!(b.get(k) == v)) return false;
      }
      return true;
    default:
      return false;
  }
}

}  // namespace qwen3moe::jinja
