#include "core/text/pretokenizer.h"

#include <utf8proc.h>

#include <array>
#include <cstdint>
#include <string>

#include "core/text/utf8.h"
#include "kernels/common/check.h"

namespace qwen3moe {
namespace {

// Character classes the regex distinguishes.
enum Class : uint8_t {
  kOther = 0,   // not a letter, number or whitespace (punctuation, symbols, marks, controls)
  kLetter = 1,  // \p{L}
  kNumber = 2,  // \p{N}
  kSpace = 3,   // \s other than \r and \n
  kNewline = 4  // \r or \n (also \s)
};

Class classify_slow(char32_t cp) {
  if (cp == '\r' || cp == '\n') return kNewline;
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return kNumber;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return kSpace;
    default:
      return kOther;
  }
}

const std::array<Class, 128>& ascii_classes() {
  static const std::array<Class, 128> table = [] {
    std::array<Class, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = classify_slow(c);
    return t;
  }();
  return table;
}

// One decoded character: its class, byte offset, and (for the contraction check) its
// lower-cased ASCII value, or 's' for U+017F LATIN SMALL LETTER LONG S, which Oniguruma's
// case-insensitive matching folds to 's'.
struct Char {
  Class cls;
  char folded;
  uint32_t offset;
};

}  // namespace

PreTokenizer PreTokenizer::from_pattern(std::string_view pattern) {
  static const std::string kHead = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|)";
  static const std::string kTail = R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  PreTokenizer p;
  if (pattern == kHead + R"(\p{N})" + kTail) {
    p.max_digits_ = 1;
  } else if (pattern == kHead + R"(\p{N}{1,3})" + kTail) {
    p.max_digits_ = 3;
  } else {
    QWEN3MOE_FAIL(
        "unsupported pre-tokenizer regex (only the Qwen2 and Llama-3 splits are "
        "implemented): ",
        pattern);
  }
  return p;
}

void PreTokenizer::split(std::string_view text, std::vector<size_t>& ends) const {
  const auto& ascii = ascii_classes();
  // Decode once; the scanner then works on classes. A sentinel at the end simplifies lookahead.
  static thread_local std::vector<Char> chars;
  chars.clear();
  chars.reserve(text.size() + 1);
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      const char lower = (b >= 'A' && b <= 'Z') ? static_cast<char>(b + 32) : static_cast<char>(b);
      chars.push_back({ascii[b], lower, static_cast<uint32_t>(i)});
      ++i;
      continue;
    }
    const size_t len = utf8::valid_char_length(text, i);
    QWEN3MOE_CHECK(len != 0, "pre-tokenizer: invalid UTF-8 at byte offset ", i);
    const char32_t cp = utf8::decode(text, i, len);
    chars.push_back({classify_slow(cp), cp == 0x17F ? 's' : '\0', static_cast<uint32_t>(i)});
    i += len;
  }
  const size_t n = chars.size();
  chars.push_back({kOther, '\0', static_cast<uint32_t>(text.size())});
  const auto is_space = [&](size_t k) { return chars[k].cls >= kSpace; };

  size_t i = 0;
  while (i < n) {
    const Class c = chars[i].cls;
    size_t j = i;  // end (exclusive, in chars) of the match starting at i
    // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if (text[chars[i].offset] == '\'' && i + 1 < n) {
      const char a = chars[i + 1].folded;
      const char b = i + 2 < n ? chars[i + 2].folded : '\0';
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        j = i + 2;
      } else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
        j = i + 3;
      }
    }
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+
    if (j == i) {
      size_t k = i;
      if (c != kLetter && c != kNumber && c != kNewline && chars[i + 1].cls == kLetter) ++k;
      if (chars[k].cls == kLetter) {
        while (chars[k].cls == kLetter) ++k;
        j = k;
      }
    }
    // 3. \p{N}{1,K}
    if (j == i && c == kNumber) {
      j = i + 1;
      while (j < n && j - i < static_cast<size_t>(max_digits_) && chars[j].cls == kNumber) ++j;
    }
    // 4.  ?[^\s\p{L}\p{N}]+[\r\n]*
    if (j == i) {
      size_t k = i;
      if (text[chars[i].offset] == ' ' && chars[i + 1].cls == kOther && i + 1 < n) ++k;
      if (k < n && chars[k].cls == kOther) {
        while (k < n && chars[k].cls == kOther) ++k;
        while (k < n && chars[k].cls == kNewline) ++k;
        j = k;
      }
    }
    if (j == i) {
      // Only whitespace is left here. Find the whitespace run [i, run_end).
      size_t run_end = i;
      size_t last_newline = n;  // index of the last \r or \n in the run
      while (run_end < n && is_space(run_end)) {
        if (chars[run_end].cls == kNewline) last_newline = run_end;
        ++run_end;
      }
      if (last_newline != n) {
        j = last_newline + 1;  // 5. \s*[\r\n]+ : greedy \s* backs off to the last newline
      } else if (run_end == n || run_end - i == 1) {
        j = run_end;  // 6. \s+(?!\S) at the end of text, or 7. \s+ for a single space
      } else {
        j = run_end - 1;  // 6. \s+(?!\S) leaves the last space to prefix the next word
      }
    }
    ends.push_back(chars[j].offset);
    i = j;
  }
}

}  // namespace qwen3moe
