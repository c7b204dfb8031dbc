#include "core/engine/debug_stall.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace qwen3moe {

void debug_stall_if_asked(int rank, int64_t step) {
  static const char* spec = std::getenv("QWEN3MOE_DEBUG_STALL");
  if (!spec) return;
  int r = -1;
  long long s = -1;
  if (std::sscanf(spec, "%d:%lld", &r, &s) == 2 && r == rank && s == step)
    std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace qwen3moe
