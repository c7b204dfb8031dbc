// The one rule for splitting n things over parts (vocabulary rows over tp ranks, a step's tokens
// over the ranks of a MoE layer, a dense MLP's intermediate dimension): every part gets
// ceil(n / parts) in order, so the last parts may hold fewer, or none.
#pragma once

#include <algorithm>
#include <cstdint>

namespace qwen3moe {

// d > 0. For n > 0 no intermediate passes n (n + d - 1 would overflow near INT64_MAX).
constexpr int64_t ceil_div(int64_t n, int64_t d) {
  return n > 0 ? (n - 1) / d + 1 : (n + d - 1) / d;
}

struct Slice {
  int64_t begin = 0;  // first index of the part
  int64_t size = 0;   // how many it holds (0 past the end)
};

// Part i of n split over `parts`.
constexpr Slice even_split(int64_t n, int64_t parts, int64_t i) {
  const int64_t per = ceil_div(n, parts);
  const int64_t begin = std::min(n, per * i);
  return {begin, std::min(n, begin + per) - begin};
}

}  // namespace qwen3moe
