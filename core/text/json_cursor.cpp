#include "core/text/json_cursor.h"

#include <cstring>

#include "core/text/utf8.h"
#include "kernels/common/check.h"

namespace qwen3moe {

JsonCursor::JsonCursor(std::string_view text, std::string source)
    : text_(text), source_(std::move(source)) {}

void JsonCursor::fail(std::string_view what) const {
  QWEN3MOE_FAIL(source_, source_.empty() ? "" : ": ", "invalid JSON at byte offset ", pos_, ": ",
                what);
}

void JsonCursor::skip_ws() {
  while (pos_ < text_.size()) {
    const char c = text_[pos_];
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') break;
    ++pos_;
  }
}

void JsonCursor::expect(char c) {
  skip_ws();
  if (pos_ >= text_.size() || text_[pos_] != c) fail(std::string("expected '") + c + "'");
  ++pos_;
}

JsonCursor::Kind JsonCursor::peek() {
  skip_ws();
  if (pos_ >= text_.size()) fail("unexpected end of input");
  switch (text_[pos_]) {
    case 'n':
      return Kind::kNull;
    case 't':
    case 'f':
      return Kind::kBool;
    case '"':
      return Kind::kString;
    case '[':
      return Kind::kArray;
    case '{':
      return Kind::kObject;
    default:
      if (text_[pos_] == '-' || (text_[pos_] >= '0' && text_[pos_] <= '9')) return Kind::kNumber;
      fail(std::string("unexpected character '") + text_[pos_] + "'");
  }
}

void JsonCursor::begin_object() {
  expect('{');
  first_ = true;
}

bool JsonCursor::next_key(std::string_view& key) {
  skip_ws();
  if (pos_ < text_.size() && text_[pos_] == '}') {
    ++pos_;
    first_ = false;
    return false;
  }
  if (!first_) expect(',');
  first_ = false;
  skip_ws();
  if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected an object key");
  // Keys of tokenizer.json's vocab are escaped rarely; a per-call scratch keeps views valid
  // only until the next key, which is all the callers need.
  static thread_local std::string scratch;
  key = read_string(scratch);
  expect(':');
  return true;
}

void JsonCursor::begin_array() {
  expect('[');
  first_ = true;
}

bool JsonCursor::next_element() {
  skip_ws();
  if (pos_ < text_.size() && text_[pos_] == ']') {
    ++pos_;
    first_ = false;
    return false;
  }
  if (!first_) expect(',');
  first_ = false;
  return true;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view JsonCursor::read_string(std::string& scratch) {
  skip_ws();
  if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a string");
  const size_t start = ++pos_;
  // Fast path: no escapes before the closing quote.
  const char* base = text_.data();
  const void* quote = std::memchr(base + start, '"', text_.size() - start);
  if (quote == nullptr) fail("unterminated string");
  const size_t end = static_cast<const char*>(quote) - base;
  if (std::memchr(base + start, '\\', end - start) == nullptr) {
    for (size_t i = start; i < end; ++i) {
      if (static_cast<unsigned char>(base[i]) < 0x20) {
        pos_ = i;
        fail("control character in string");
      }
    }
    pos_ = end + 1;
    return text_.substr(start, end - start);
  }
  scratch.clear();
  size_t i = start;
  while (true) {
    if (i >= text_.size()) {
      pos_ = i;
      fail("unterminated string");
    }
    const char c = text_[i];
    if (c == '"') break;
    if (static_cast<unsigned char>(c) < 0x20) {
      pos_ = i;
      fail("control character in string");
    }
    if (c != '\\') {
      scratch.push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= text_.size()) {
      pos_ = i;
      fail("unterminated escape");
    }
    const char e = text_[i + 1];
    i += 2;
    switch (e) {
      case '"':
        scratch.push_back('"');
        break;
      case '\\':
        scratch.push_back('\\');
        break;
      case '/':
        scratch.push_back('/');
        break;
      case 'b':
        scratch.push_back('\b');
        break;
      case 'f':
        scratch.push_back('\f');
        break;
      case 'n':
        scratch.push_back('\n');
        break;
      case 'r':
        scratch.push_back('\r');
        break;
      case 't':
        scratch.push_back('\t');
        break;
      case 'u': {
        auto read4 = [&](size_t at) {
          int v = 0;
          for (size_t k = 0; k < 4; ++k) {
            const int h = at + k < text_.size() ? hex_value(text_[at + k]) : -1;
            if (h < 0) {
              pos_ = at;
              fail("bad \\u escape");
            }
            v = v * 16 + h;
          }
          return static_cast<char32_t>(v);
        };
        char32_t cp = read4(i);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (i + 6 > text_.size() || text_[i] != '\\' || text_[i + 1] != 'u') {
            pos_ = i;
            fail("unpaired surrogate in \\u escape");
          }
          const char32_t lo = read4(i + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) {
            pos_ = i;
            fail("unpaired surrogate in \\u escape");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          pos_ = i;
          fail("unpaired surrogate in \\u escape");
        }
        utf8::append(scratch, cp);
        break;
      }
      default:
        pos_ = i - 1;
        fail("bad escape");
    }
  }
  pos_ = i + 1;
  return scratch;
}

int64_t JsonCursor::read_int() {
  skip_ws();
  const size_t start = pos_;
  bool negative = false;
  if (pos_ < text_.size() && text_[pos_] == '-') {
    negative = true;
    ++pos_;
  }
  int64_t v = 0;
  size_t digits = 0;
  while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
    // Checked before the step: a 19th digit could overflow int64.
    if (++digits > 18) fail("integer too large");
    v = v * 10 + (text_[pos_] - '0');
    ++pos_;
  }
  if (digits == 0 ||
      (pos_ < text_.size() && (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E'))) {
    pos_ = start;
    fail("expected an integer");
  }
  return negative ? -v : v;
}

bool JsonCursor::read_bool() {
  skip_ws();
  if (text_.substr(pos_, 4) == "true") {
    pos_ += 4;
    return true;
  }
  if (text_.substr(pos_, 5) == "false") {
    pos_ += 5;
    return false;
  }
  fail("expected true or false");
}

bool JsonCursor::read_null_if_present() {
  skip_ws();
  if (text_.substr(pos_, 4) == "null") {
    pos_ += 4;
    return true;
  }
  return false;
}

void JsonCursor::skip_string() {
  ++pos_;  // opening quote
  while (true) {
    const void* p = std::memchr(text_.data() + pos_, '"', text_.size() - pos_);
    if (p == nullptr) fail("unterminated string");
    size_t q = static_cast<const char*>(p) - text_.data();
    // The quote is escaped when an odd number of backslashes precede it.
    size_t backslashes = 0;
    while (q - backslashes > pos_ && text_[q - backslashes - 1] == '\\') ++backslashes;
    pos_ = q + 1;
    if (backslashes % 2 == 0) return;
  }
}

void JsonCursor::skip_value() {
  skip_value_at(0);
}

void JsonCursor::skip_value_at(int depth) {
  // Bounded, so brackets by the hundred thousand are an error and not a stack overflow.
  switch (peek()) {
    case Kind::kString:
      skip_string();
      return;
    case Kind::kObject: {
      if (depth >= kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
      begin_object();
      std::string_view key;
      while (next_key(key)) skip_value_at(depth + 1);
      return;
    }
    case Kind::kArray:
      if (depth >= kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
      begin_array();
      while (next_element()) skip_value_at(depth + 1);
      return;
    case Kind::kNull:
      if (!read_null_if_present()) fail("expected null");
      return;
    case Kind::kBool:
      read_bool();
      return;
    case Kind::kNumber: {
      const size_t start = pos_;
      while (pos_ < text_.size() && std::strchr("+-0123456789.eE", text_[pos_]) != nullptr &&
             text_[pos_] != '\0')
        ++pos_;
      if (pos_ == start) fail("expected a number");
      return;
    }
  }
}

std::string_view JsonCursor::raw_value() {
  skip_ws();
  const size_t start = pos_;
  skip_value();
  return text_.substr(start, pos_ - start);
}

void JsonCursor::expect_end() {
  skip_ws();
  if (pos_ != text_.size()) fail("trailing characters after the document");
}

}  // namespace qwen3moe
