#include "core/text/jinja/parser.h"

#include <cstdlib>

#include "core/text/utf8.h"
#include "kernels/common/check.h"

namespace qwen3moe::jinja {
namespace {

struct Token {
  enum class Type {
    kText,
    kVarBegin,
    kVarEnd,
    kBlockBegin,
    kBlockEnd,
    kName,
    kString,
    kInt,
    kFloat,
    kOp,
    kEnd
  };
  Type type;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 0;
};

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Splits the source into text and the tokens of each tag, applying the whitespace control.
class Lexer {
 public:
  explicit Lexer(std::string_view src) : src_(src) {}

  std::vector<Token> run() {
    bool strip_leading = false;  // the previous tag ended with '-'
    bool trim_newline = false;   // the previous tag was a block or comment (trim_blocks)
    size_t pos = 0;
    while (pos <= src_.size()) {
      if (trim_newline && !strip_leading) {
        if (src_.substr(pos, 1) == "\n") {
          ++pos;
        } else if (src_.substr(pos, 2) == "\r\n") {
          pos += 2;
        }
      }
      const size_t tag = find_tag(pos);
      std::string text(src_.substr(pos, tag - pos));
      if (strip_leading) {
        size_t k = 0;
        while (k < text.size() && is_blank(text[k])) ++k;
        text.erase(0, k);
      }
      const bool line_starting = pos == 0 || src_[pos - 1] == '\n';
      if (tag == src_.size()) {
        push_text(text, pos);
        break;
      }
      const char kind = src_[tag + 1];
      const char marker = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (marker == '-') {
        while (!text.empty() && is_blank(text.back())) text.pop_back();
      } else if (kind != '{' && marker != '+') {
        // lstrip_blocks: spaces and tabs between the start of the line and a block or comment.
        const size_t nl = text.rfind('\n');
        const size_t line_start = nl == std::string::npos ? 0 : nl + 1;
        if (nl != std::string::npos || line_starting) {
          if (text.find_first_not_of(" \t", line_start) == std::string::npos) {
            text.erase(line_start);
          }
        }
      }
      push_text(text, pos);
      size_t p = tag + 2 + ((marker == '-' || marker == '+') ? 1 : 0);
      line_ = line_at(tag);
      if (kind == '#') {
        const size_t end = src_.find("#}", p);
        QWEN3MOE_CHECK(end != std::string_view::npos, "chat template line ", line_,
                       ": unterminated comment");
        strip_leading = end > p && src_[end - 1] == '-';
        trim_newline = !(end > p && src_[end - 1] == '+');
        pos = end + 2;
        continue;
      }
      tokens_.push_back(
          {kind == '{' ? Token::Type::kVarBegin : Token::Type::kBlockBegin, "", 0, 0, line_});
      bool minus_end = false, plus_end = false;
      pos = lex_tag(p, kind == '{' ? '}' : '%', minus_end, plus_end);
      tokens_.push_back(
          {kind == '{' ? Token::Type::kVarEnd : Token::Type::kBlockEnd, "", 0, 0, line_});
      strip_leading = minus_end;
      trim_newline = kind == '%' && !plus_end;
    }
    tokens_.push_back({Token::Type::kEnd, "", 0, 0, line_});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t pos) const {
    for (size_t i = pos; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return src_.size();
  }
  // The line of pos, counted on from the last position asked (positions only grow while
  // lexing), so a template of many tags lexes in linear time.
  int line_at(size_t pos) {
    if (pos < line_pos_) {
      line_pos_ = 0;
      line_count_ = 1;
    }
    for (; line_pos_ < pos && line_pos_ < src_.size(); ++line_pos_)
      line_count_ += src_[line_pos_] == '\n';
    return line_count_;
  }
  size_t line_pos_ = 0;
  int line_count_ = 1;
  void push_text(const std::string& text, size_t pos) {
    if (!text.empty()) tokens_.push_back({Token::Type::kText, text, 0, 0, line_at(pos)});
  }

  // Lexes expression tokens from p up to the closing "}}" or "%}"; returns the position after.
  size_t lex_tag(size_t p, char closer, bool& minus_end, bool& plus_end) {
    int depth = 0;  // brackets opened inside the tag, so that "}}" in {{ {'a': {}} }} works
    while (true) {
      while (p < src_.size() && is_blank(src_[p])) {
        if (src_[p] == '\n') ++line_;
        ++p;
      }
      QWEN3MOE_CHECK(p < src_.size(), "chat template line ", line_, ": unterminated tag");
      auto at = [&](std::string_view s) { return src_.substr(p, s.size()) == s; };
      const std::string close = std::string(1, closer) + "}";
      if (depth == 0 || closer == '%') {
        if (at("-" + close) || at("+" + close)) {
          minus_end = src_[p] == '-';
          plus_end = src_[p] == '+';
          return p + 3;
        }
        if (at(close) && (closer == '%' || depth == 0)) return p + 2;
      }
      const char c = src_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
          ++e;
        tokens_.push_back({Token::Type::kName, std::string(src_.substr(p, e - p)), 0, 0, line_});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = p;
        bool is_float = false;
        while (e < src_.size() &&
               (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
          ++e;
        if (e + 1 < src_.size() && src_[e] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t f = e + 1;
          if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < src_.size() && std::isdigit(static_cast<unsigned char>(src_[f]))) {
            is_float = true;
            e = f;
            while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
          }
        }
        std::string digits;
        for (size_t k = p; k < e; ++k) {
          if (src_[k] != '_') digits += src_[k];
        }
        Token t{is_float ? Token::Type::kFloat : Token::Type::kInt, digits, 0, 0, line_};
        if (is_float) {
          t.float_value = std::strtod(digits.c_str(), nullptr);
        } else {
          t.int_value = std::strtoll(digits.c_str(), nullptr, 10);
        }
        tokens_.push_back(t);
        p = e;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        static const char* kOps[] = {"==", "!=", "<=", ">=", "//", "**", "+", "-", "*",
                                     "/",  "%",  "~",  "|",  ".",  ",",  ":", "(", ")",
                                     "[",  "]",  "{",  "}",  "=",  "<",  ">"};
        std::string op;
        for (const char* o : kOps) {
          if (at(o)) {
            op = o;
            break;
          }
        }
        QWEN3MOE_CHECK(!op.empty(), "chat template line ", line_, ": unexpected character '",
                       std::string(1, c), "'");
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        tokens_.push_back({Token::Type::kOp, op, 0, 0, line_});
        p += op.size();
      }
    }
  }

  size_t lex_string(size_t p) {
    const char quote = src_[p++];
    std::string s;
    while (true) {
      QWEN3MOE_CHECK(p < src_.size(), "chat template line ", line_, ": unterminated string");
      const char c = src_[p];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\' || p + 1 >= src_.size()) {
        s += c;
        ++p;
        continue;
      }
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case 'n':
          s += '\n';
          break;
        case 't':
          s += '\t';
          break;
        case 'r':
          s += '\r';
          break;
        case '0':
          s += '\0';
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'v':
          s += '\v';
          break;
        case 'a':
          s += '\a';
          break;
        case '\\':
          s += '\\';
          break;
        case '\'':
          s += '\'';
          break;
        case '"':
          s += '"';
          break;
        case '\n':
          ++line_;
          break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          QWEN3MOE_CHECK(p + n <= src_.size(), "chat template line ", line_, ": bad \\", e,
                         " escape");
          const std::string hex(src_.substr(p, n));
          char* end = nullptr;
          const unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
          QWEN3MOE_CHECK(end == hex.c_str() + n && cp <= 0x10FFFF, "chat template line ", line_,
                         ": bad \\", e, " escape");
          utf8::append(s, static_cast<char32_t>(cp));
          p += n;
          break;
        }
        default:  // Python keeps unknown escapes as written
          s += '\\';
          s += e;
      }
    }
    tokens_.push_back({Token::Type::kString, s, 0, 0, line_});
    return p + 1;
  }

  std::string_view src_;
  std::vector<Token> tokens_;
  int line_ = 1;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Template run() {
    Template tpl;
    const std::string stop = parse_body(tpl.body, {});
    QWEN3MOE_CHECK(stop.empty(), "chat template line ", cur().line, ": unexpected '", stop, "'");
    return tpl;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& next() { return t_[i_++]; }

  // Nesting of blocks and expressions, bounded: the parser, the tree's destructor and the
  // interpreter all recurse once per level, so a template nested a hundred thousand deep is an
  // error naming the limit rather than a stack overflow.
  static constexpr int kMaxNesting = 256;
  struct Nested {
    explicit Nested(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting)
        p_.fail("nested deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~Nested() { --p_.depth_; }
    Parser& p_;
  };
  // A left-deep chain (a + b + c, x.a.b, v|f|g) is built by a loop, not by recursion, but the
  // tree it builds is as deep as it is long: each link counts as a level while the chain and
  // everything parsed inside it lasts.
  struct Chain {
    explicit Chain(Parser& p) : p_(p) {}
    void link() {
      ++links_;
      if (++p_.depth_ > kMaxNesting)
        p_.fail("nested deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~Chain() { p_.depth_ -= links_; }
    Parser& p_;
    int links_ = 0;
  };
  int depth_ = 0;
  bool is_op(const char* op) const { return cur().type == Token::Type::kOp && cur().text == op; }
  bool is_name(const char* name) const {
    return cur().type == Token::Type::kName && cur().text == name;
  }
  bool peek_name_at(size_t k, const char* name) const {
    return i_ + k < t_.size() && t_[i_ + k].type == Token::Type::kName && t_[i_ + k].text == name;
  }
  [[noreturn]] void fail(const std::string& what) const {
    QWEN3MOE_FAIL("chat template line ", cur().line, ": ", what);
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', found '" + describe() + "'");
    ++i_;
  }
  std::string describe() const {
    switch (cur().type) {
      case Token::Type::kVarEnd:
        return "}}";
      case Token::Type::kBlockEnd:
        return "%}";
      case Token::Type::kEnd:
        return "end of template";
      default:
        return cur().text;
    }
  }
  std::string expect_name() {
    if (cur().type != Token::Type::kName) fail("expected a name, found '" + describe() + "'");
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != Token::Type::kBlockEnd) fail("expected '%}', found '" + describe() + "'");
    ++i_;
  }

  // Parses nodes until a block tag whose keyword is in `stops`; returns that keyword (its tag
  // is left open: the caller reads the rest), or "" at the end of the template.
  std::string parse_body(Body& body, std::initializer_list<const char*> stops) {
    const Nested nested(*this);
    while (true) {
      const Token& tok = cur();
      switch (tok.type) {
        case Token::Type::kEnd:
          if (stops.size() != 0) {
            fail(std::string("missing '{% ") + *(stops.end() - 1) + " %}' (template ended)");
          }
          return "";
        case Token::Type::kText: {
          auto n = std::make_unique<Node>();
          n->kind = Node::Kind::kText;
          n->line = tok.line;
          n->text = tok.text;
          body.push_back(std::move(n));
          ++i_;
          break;
        }
        case Token::Type::kVarBegin: {
          ++i_;
          auto n = std::make_unique<Node>();
          n->kind = Node::Kind::kOutput;
          n->line = tok.line;
          n->expr = parse_expr();
          if (cur().type != Token::Type::kVarEnd) fail("expected '}}', found '" + describe() + "'");
          ++i_;
          body.push_back(std::move(n));
          break;
        }
        case Token::Type::kBlockBegin: {
          ++i_;
          std::string keyword = cur().type == Token::Type::kName ? cur().text : describe();
          for (const char* s : stops) {
            if (keyword == s) {
              ++i_;
              return keyword;
            }
          }
          body.push_back(parse_statement(keyword));
          break;
        }
        default:
          fail("unexpected '" + describe() + "'");
      }
    }
  }

  std::unique_ptr<Node> parse_statement(const std::string& keyword) {
    auto n = std::make_unique<Node>();
    n->line = cur().line;
    ++i_;  // the keyword
    if (keyword == "if") {
      n->kind = Node::Kind::kIf;
      n->conditions.push_back(parse_expr());
      expect_block_end();
      while (true) {
        n->bodies.emplace_back();
        const std::string stop = parse_body(n->bodies.back(), {"elif", "else", "endif"});
        if (stop == "elif") {
          n->conditions.push_back(parse_expr());
          expect_block_end();
        } else if (stop == "else") {
          expect_block_end();
          parse_body(n->else_body, {"endif"});
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (keyword == "for") {
      n->kind = Node::Kind::kFor;
      n->targets.push_back(expect_name());
      while (is_op(",")) {
        ++i_;
        n->targets.push_back(expect_name());
      }
      if (!is_name("in")) fail("expected 'in' in for loop");
      ++i_;
      n->expr = parse_or();  // not a conditional: "if" here filters the loop
      if (is_name("if")) {
        ++i_;
        n->filter = parse_expr();
      }
      if (is_name("recursive")) fail("unsupported construct 'recursive' for loop");
      expect_block_end();
      const std::string stop = parse_body(n->body, {"else", "endfor"});
      expect_block_end();
      if (stop == "else") {
        parse_body(n->else_body, {"endfor"});
        expect_block_end();
      }
    } else if (keyword == "set") {
      n->kind = Node::Kind::kSet;
      n->targets.push_back(expect_name());
      if (is_op(".")) {
        ++i_;
        n->attr = expect_name();
      }
      if (is_op(",")) fail("unsupported construct 'set' with several targets");
      if (cur().type == Token::Type::kBlockEnd) fail("unsupported construct 'set' block");
      expect_op("=");
      n->expr = parse_expr();
      expect_block_end();
    } else if (keyword == "break" || keyword == "continue") {
      n->kind = keyword == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      expect_block_end();
    } else if (keyword == "generation") {
      // Hugging Face's assistant-mask marker: renders its body unchanged.
      n->kind = Node::Kind::kBlock;
      expect_block_end();
      parse_body(n->body, {"endgeneration"});
      expect_block_end();
    } else {
      --i_;
      fail("unsupported statement '" + keyword + "'");
    }
    return n;
  }

  ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b) {
    auto e = make(Expr::Kind::kBinary, a->line);
    e->name = op;
    e->a = std::move(a);
    e->b = std::move(b);
    return e;
  }

  // expr := or ["if" or ["else" expr]]
  ExprPtr parse_expr() {
    Chain chain(*this);
    const Nested nested(*this);
    ExprPtr value = parse_or();
    while (is_name("if")) {
      chain.link();
      ++i_;
      auto e = make(Expr::Kind::kCondition, value->line);
      e->a = parse_or();
      e->b = std::move(value);
      if (is_name("else")) {
        ++i_;
        e->c = parse_expr();
      }
      value = std::move(e);
    }
    return value;
  }
  ExprPtr parse_or() {
    Chain chain(*this);
    ExprPtr left = parse_and();
    while (is_name("or")) {
      chain.link();
      ++i_;
      left = binary("or", std::move(left), parse_and());
    }
    return left;
  }
  ExprPtr parse_and() {
    Chain chain(*this);
    ExprPtr left = parse_not();
    while (is_name("and")) {
      chain.link();
      ++i_;
      left = binary("and", std::move(left), parse_not());
    }
    return left;
  }
  ExprPtr parse_not() {
    const Nested nested(*this);
    if (is_name("not")) {
      auto e = make(Expr::Kind::kUnary, cur().line);
      ++i_;
      e->name = "not";
      e->a = parse_not();
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    Chain chain(*this);
    ExprPtr left = parse_math1();
    while (true) {
      chain.link();
      std::string op;
      if (cur().type == Token::Type::kOp &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        ++i_;
        op = "in";
      } else if (is_name("not") && peek_name_at(1, "in")) {
        i_ += 2;
        op = "not in";
      } else {
        return left;
      }
      left = binary(op, std::move(left), parse_math1());
    }
  }
  ExprPtr parse_math1() {
    Chain chain(*this);
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      chain.link();
      const std::string op = next().text;
      left = binary(op, std::move(left), parse_concat());
    }
    return left;
  }
  ExprPtr parse_concat() {
    Chain chain(*this);
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      chain.link();
      ++i_;
      left = binary("~", std::move(left), parse_math2());
    }
    return left;
  }
  ExprPtr parse_math2() {
    Chain chain(*this);
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      chain.link();
      const std::string op = next().text;
      left = binary(op, std::move(left), parse_pow());
    }
    return left;
  }
  ExprPtr parse_pow() {
    Chain chain(*this);
    ExprPtr left = parse_unary();
    while (is_op("**")) {
      chain.link();
      ++i_;
      left = binary("**", std::move(left), parse_unary());
    }
    return left;
  }
  ExprPtr parse_unary() {
    const Nested nested(*this);
    if (is_op("-") || is_op("+")) {
      auto e = make(Expr::Kind::kUnary, cur().line);
      e->name = next().text;
      e->a = parse_unary_no_filter();
      return parse_filters(std::move(e));
    }
    return parse_filters(parse_postfix(parse_primary()));
  }
  ExprPtr parse_unary_no_filter() {
    const Nested nested(*this);
    if (is_op("-") || is_op("+")) {
      auto e = make(Expr::Kind::kUnary, cur().line);
      e->name = next().text;
      e->a = parse_unary_no_filter();
      return e;
    }
    return parse_postfix(parse_primary());
  }

  ExprPtr parse_primary() {
    const Nested nested(*this);
    const Token& tok = cur();
    switch (tok.type) {
      case Token::Type::kString: {
        std::string s;
        while (cur().type == Token::Type::kString) s += next().text;  // "a" "b" concatenates
        auto e = make(Expr::Kind::kLiteral, tok.line);
        e->value = Value(std::move(s));
        return e;
      }
      case Token::Type::kInt: {
        auto e = make(Expr::Kind::kLiteral, tok.line);
        e->value = Value(next().int_value);
        return e;
      }
      case Token::Type::kFloat: {
        auto e = make(Expr::Kind::kLiteral, tok.line);
        e->value = Value(next().float_value);
        return e;
      }
      case Token::Type::kName: {
        const std::string name = next().text;
        auto e = make(Expr::Kind::kLiteral, tok.line);
        if (name == "true" || name == "True") {
          e->value = Value(true);
        } else if (name == "false" || name == "False") {
          e->value = Value(false);
        } else if (name == "none" || name == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = name;
        }
        return e;
      }
      case Token::Type::kOp:
        if (tok.text == "(") {
          ++i_;
          ExprPtr inner = parse_expr();
          if (is_op(",")) {  // a tuple: treated as a list
            auto list = make(Expr::Kind::kList, tok.line);
            list->name = "tuple";
            list->items.push_back(std::move(inner));
            while (is_op(",")) {
              ++i_;
              if (is_op(")")) break;
              list->items.push_back(parse_expr());
            }
            inner = std::move(list);
          }
          expect_op(")");
          return inner;
        }
        if (tok.text == "[") {
          ++i_;
          auto list = make(Expr::Kind::kList, tok.line);
          while (!is_op("]")) {
            list->items.push_back(parse_expr());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("]");
          return list;
        }
        if (tok.text == "{") {
          ++i_;
          auto dict = make(Expr::Kind::kDict, tok.line);
          while (!is_op("}")) {
            dict->items.push_back(parse_expr());
            expect_op(":");
            dict->items.push_back(parse_expr());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("}");
          return dict;
        }
        break;
      default:
        break;
    }
    fail("unexpected '" + describe() + "' in expression");
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == Token::Type::kName && i_ + 1 < t_.size() &&
          t_[i_ + 1].type == Token::Type::kOp && t_[i_ + 1].text == "=") {
        e.kw_names.push_back(next().text);
        ++i_;
        e.kw_values.push_back(parse_expr());
      } else {
        if (!e.kw_names.empty()) fail("positional argument after a keyword argument");
        e.items.push_back(parse_expr());
      }
      if (!is_op(",")) break;
      ++i_;
    }
    expect_op(")");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    Chain chain(*this);
    while (true) {
      chain.link();
      if (is_op(".")) {
        ++i_;
        auto a = make(Expr::Kind::kAttr, e->line);
        if (cur().type == Token::Type::kInt) {  // x.0 is x[0]
          a->kind = Expr::Kind::kItem;
          a->b = make(Expr::Kind::kLiteral, e->line);
          a->b->value = Value(next().int_value);
        } else {
          a->name = expect_name();
        }
        a->a = std::move(e);
        e = std::move(a);
      } else if (is_op("[")) {
        ++i_;
        ExprPtr parts[3];
        int colons = 0;
        while (true) {
          if (is_op(":")) {
            if (++colons > 2) fail("bad slice");
            ++i_;
            continue;
          }
          if (is_op("]")) break;
          if (parts[colons]) fail("bad subscript");
          parts[colons] = parse_expr();
        }
        expect_op("]");
        if (colons == 0) {
          if (!parts[0]) fail("empty subscript");
          auto it = make(Expr::Kind::kItem, e->line);
          it->a = std::move(e);
          it->b = std::move(parts[0]);
          e = std::move(it);
        } else {
          auto s = make(Expr::Kind::kSlice, e->line);
          s->a = std::move(e);
          s->b = std::move(parts[0]);
          s->c = std::move(parts[1]);
          if (parts[2]) s->items.push_back(std::move(parts[2]));
          e = std::move(s);
        }
      } else if (is_op("(")) {
        auto c = make(Expr::Kind::kCall, e->line);
        parse_call_args(*c);
        c->a = std::move(e);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filters(ExprPtr e) {
    Chain chain(*this);
    while (true) {
      chain.link();
      if (is_op("|")) {
        ++i_;
        auto f = make(Expr::Kind::kFilter, e->line);
        f->name = expect_name();
        if (is_op("(")) parse_call_args(*f);
        f->a = std::move(e);
        e = std::move(f);
      } else if (is_name("is")) {
        ++i_;
        auto t = make(Expr::Kind::kTest, e->line);
        if (is_name("not")) {
          ++i_;
          t->negated = true;
        }
        // Test names may be keywords: "is none", "is false", "is true".
        if (cur().type != Token::Type::kName) fail("expected a test name after 'is'");
        t->name = next().text;
        if (is_op("(")) {
          parse_call_args(*t);
        } else if (cur().type == Token::Type::kString || cur().type == Token::Type::kInt ||
                   cur().type == Token::Type::kFloat ||
                   (cur().type == Token::Type::kName && !is_name("and") && !is_name("or") &&
                    !is_name("if") && !is_name("else") && !is_name("is") && !is_name("in") &&
                    !is_name("not"))) {
          t->items.push_back(parse_postfix(parse_primary()));  // "is sameas false"
        }
        t->a = std::move(e);
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
};

}  // namespace

Template parse(std::string_view source) {
  return Parser(Lexer(source).run()).run();
}

}  // namespace qwen3moe::jinja
