// Test hook for hang forensics and health: QWEN3MOE_DEBUG_STALL="R:S" makes rank R stop
// answering at step S (it sleeps far past any timeout), as a stuck GPU or node would, and
// "R:S:fail" makes its step throw there, as a failed collective does, and "R:S:slowMS" makes
// every step of rank R from S on last MS milliseconds longer, as a slow but live node. Unset in
// every real run; tests set it to prove that a stall is named, not hidden, and that a failure
// reaches clients.
#pragma once

#include <cstdint>

namespace qwen3moe {

void debug_stall_if_asked(int rank, int64_t step);

}  // namespace qwen3moe
