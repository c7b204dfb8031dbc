// A cumulative histogram with fixed bucket bounds, as Prometheus exposes one (each bucket counts
// the observations <= its bound; the last, +Inf, counts all), plus the sum and the count.
#pragma once

#include <cstdint>
#include <vector>

namespace qwen3moe {

struct Histogram {
  std::vector<double> bounds;    // [B] ascending upper bounds
  std::vector<uint64_t> counts;  // [B + 1] per bucket (not cumulative); the last is past bounds
  double sum = 0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> upper_bounds = {})
      : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

  void observe(double v) {
    size_t b = 0;
    while (b < bounds.size() && v > bounds[b]) ++b;
    ++counts[b];
    sum += v;
    ++count;
  }
};

}  // namespace qwen3moe
