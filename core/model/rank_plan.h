// What one rank of a TP x EP split holds of a checkpoint, from its layout (checkpoint_layout)
// and the stored dtypes, or without weights the dtypes the config implies (BF16, FP8
// projections under an fp8 quantization_config): inspect's plan and the load progress's total.
#pragma once

#include <map>
#include <string>

#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "parallel/topology.h"

namespace qwen3moe {

struct RankPlan {
  // Bytes on one rank by part: attention (its heads; KV heads possibly replicated), its
  // experts, its slice of the dense MLPs, its vocabulary rows, and what every rank holds.
  double attention = 0, experts = 0, dense = 0, vocab = 0, replicated = 0;
  std::map<std::string, double> bytes_by_dtype;  // the whole checkpoint, fp8 with its scales
  double params_total = 0, params_active = 0;    // parameters, active per token
  double total() const { return attention + experts + dense + vocab + replicated; }
};

// store: the checkpoint, or null to plan from the config alone.
RankPlan plan_rank(const ModelConfig& config, const Topology& topo, const WeightStore* store);

}  // namespace qwen3moe
