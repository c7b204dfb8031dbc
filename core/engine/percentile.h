// Nearest-rank percentiles for latency summaries (engine stats, the client's load mode).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace qwen3moe {

// The smallest value with at least a fraction p of the values at or below it; 0 when empty.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p * double(v.size()));
  const size_t i = rank < 1 ? 0 : std::min(v.size() - 1, size_t(rank) - 1);
  return v[i];
}

}  // namespace qwen3moe
