// Placement what-if for the all-to-all profiler: given how many token-expert pairs each expert
// of a layer received, how even would the ranks' load be under the current contiguous placement,
// under a load-balanced placement of the same experts, and with R hottest experts replicated?
// An operator reads it to decide whether expert rebalancing would pay before turning it on.
#pragma once

#include <cstdint>
#include <vector>

namespace qwen3moe {

struct Placement {
  std::vector<double> rank_load;              // [world] token-expert pairs per rank
  std::vector<std::vector<int64_t>> experts;  // [world] expert ids on each rank (copies repeat)
  double max_over_mean = 1.0;                 // max rank load / mean rank load (1: perfect)
};

struct PlacementWhatIf {
  Placement current;    // experts in contiguous blocks of E / world, as ExpertDispatch places them
  Placement balanced;   // same experts, E / world per rank, greedy longest-processing-time
  Placement redundant;  // the `redundant` hottest experts get a second copy; each copy takes half
  int redundant_copies = 0;
};

// expert_load: [E] pairs per expert; E must be divisible by world. redundant in [0, E].
PlacementWhatIf placement_whatif(const std::vector<int64_t>& expert_load, int world, int redundant);

// max / mean of values (1 when the mean is zero: nothing to be imbalanced).
double max_over_mean(const std::vector<double>& values);

}  // namespace qwen3moe
