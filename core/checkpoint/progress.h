// A progress bar on stderr for long loads and writes: fraction, bytes, MB/s, updated at most
// every 100 ms, only when enabled (rank 0 of an interactive run).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace qwen3moe {

class Progress {
 public:
  Progress(std::string label, uint64_t total, bool enabled);
  void add(uint64_t n);
  void finish();

 private:
  void draw(bool final);
  std::string label_;
  uint64_t total_, done_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace qwen3moe
