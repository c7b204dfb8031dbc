#include "core/checkpoint/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace qwen3moe {

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled) {
  start_ = last_ = std::chrono::steady_clock::now();
}

void Progress::add(uint64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  if (enabled_ && now - last_ > std::chrono::milliseconds(100)) {
    last_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

void Progress::draw(bool final) {
  // The total may be an estimate (inspect's plan): never past 100%, 100% when done.
  const double frac = final || !total_ ? 1.0 : std::min(1.0, double(done_) / double(total_));
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  constexpr int kWidth = 30;
  char bar[kWidth + 1];
  const int filled = int(std::lround(frac * kWidth));
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  std::fprintf(stderr, "\r%s [%s] %5.1f%% %8.1f MB  %7.1f MB/s%s", label_.c_str(), bar,
               100.0 * frac, double(done_) / 1e6, secs > 0 ? double(done_) / 1e6 / secs : 0.0,
               final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace qwen3moe
