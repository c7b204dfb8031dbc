#include "core/engine/debug_stall.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "kernels/common/check.h"

namespace qwen3moe {

void debug_stall_if_asked(int rank, int64_t step) {
  static const char* spec = std::getenv("QWEN3MOE_DEBUG_STALL");
  if (!spec) return;
  int r = -1;
  long long s = -1;
  char how[8] = {};
  const int n = std::sscanf(spec, "%d:%lld:%7s", &r, &s, how);
  if (n < 2 || r != rank) return;
  if (n == 3 && std::strncmp(how, "slow", 4) == 0) {
    if (step >= s) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(how + 4)));
    return;
  }
  if (s != step) return;
  if (n == 3 && std::strcmp(how, "fail") == 0)
    QWEN3MOE_FAIL("QWEN3MOE_DEBUG_STALL: rank ", rank, " fails at step ", step);
  std::this_thread::sleep_for(std::chrono::hours(1));
}

}  // namespace qwen3moe
