// The MPI world of an mpi-labelled test executable (tests/mpi_test_main.cpp owns it).
#pragma once

#include <vector>

#include "parallel/comm/communicator.h"

namespace qwen3moe::testing {
Communicator& world();

// The DP group counts (dp > 1) the world splits into: np 2 -> {2}, np 4 -> {2, 4}.
inline std::vector<int> dp_sizes() {
  std::vector<int> out;
  for (int dp = 2; dp <= world().size(); dp *= 2)
    if (world().size() % dp == 0) out.push_back(dp);
  return out;
}
}  // namespace qwen3moe::testing
