#include "core/text/utf8.h"

#include "kernels/common/check.h"

namespace qwen3moe::utf8 {
namespace {

// How far the bytes at s[i] form a valid prefix of some character: returns the number of bytes
// that are consistent with a well-formed sequence (per the Unicode table of well-formed byte
// sequences) and sets `need` to the full length that lead byte announces (0 for an invalid lead).
size_t valid_prefix(std::string_view s, size_t i, size_t& need) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    need = 1;
    return 1;
  }
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    need = 0;
    return 0;
  }
  size_t n = 1;
  while (n < need && i + n < s.size()) {
    const auto b = static_cast<unsigned char>(s[i + n]);
    const bool ok = n == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++n;
  }
  return n;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

size_t valid_char_length(std::string_view s, size_t i) {
  size_t need = 0;
  const size_t n = valid_prefix(s, i, need);
  return need != 0 && n == need ? n : 0;
}

size_t first_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = valid_char_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

void check_valid(std::string_view s, std::string_view what) {
  const size_t bad = first_invalid(s);
  QWEN3MOE_CHECK(bad == std::string_view::npos, what, ": invalid UTF-8 at byte offset ", bad,
                 " (byte 0x", std::hex, static_cast<unsigned>(static_cast<unsigned char>(s[bad])),
                 ")");
}

char32_t decode(std::string_view s, size_t i, size_t len) {
  const auto b = [&](size_t k) {
    return static_cast<char32_t>(static_cast<unsigned char>(s[i + k]));
  };
  switch (len) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_lossy(std::string& out, std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t start = i;
    while (i < bytes.size() && static_cast<unsigned char>(bytes[i]) < 0x80) ++i;
    out.append(bytes.substr(start, i - start));
    if (i == bytes.size()) break;
    size_t need = 0;
    const size_t n = valid_prefix(bytes, i, need);
    if (need != 0 && n == need) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      // A maximal subpart: an invalid lead alone, or the valid prefix that stopped short.
      out.append(kReplacement);
      i += n == 0 ? 1 : n;
    }
  }
}

size_t stable_prefix_length(std::string_view bytes) {
  // Only the last (up to 3) bytes can be an unfinished character; find the start of the last
  // sequence and see whether it is a valid prefix that the end of the buffer cut short.
  const size_t size = bytes.size();
  const size_t floor = size > 3 ? size - 3 : 0;
  for (size_t i = size; i > floor;) {
    --i;
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b >= 0x80 && b <= 0xBF) continue;  // continuation byte: keep looking for its lead
    size_t need = 0;
    const size_t n = valid_prefix(bytes, i, need);
    const bool truncated = need != 0 && n < need && i + n == size;
    return truncated ? i : size;
  }
  return size;
}

}  // namespace qwen3moe::utf8
