// Small scans over text that the streaming output parsers (reasoning, tool calls) share: ASCII
// whitespace at either end, and the part of a chunk's tail that may still become a tag.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace qwen3moe::text_scan {

inline bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

inline size_t leading_space(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  return i;
}

// Length of s without its trailing whitespace.
inline size_t without_trailing_space(std::string_view s) {
  size_t n = s.size();
  while (n > 0 && is_space(s[n - 1])) --n;
  return n;
}

// Length of the longest suffix of s that is a proper prefix of tag: the bytes that the next
// push could complete into the tag. Every later occurrence of the tag starts inside it.
inline size_t partial_tag(std::string_view s, std::string_view tag) {
  for (size_t k = std::min(s.size(), tag.size() - 1); k > 0; --k)
    if (s.substr(s.size() - k) == tag.substr(0, k)) return k;
  return 0;
}

}  // namespace qwen3moe::text_scan
