// The serving metrics in the Prometheus text exposition format (version 0.0.4), named as vLLM
// names its own with our prefix (vllm:time_to_first_token_seconds is
// qwen3moe:time_to_first_token_seconds here, same buckets), so its dashboards port over by
// renaming the prefix. (The all-to-all's per-layer bytes and time and the per-expert token counts
// are in the profiler's report, --profile-a2a, not here yet.)
#pragma once

#include <cstdint>
#include <string>

#include "core/engine/engine.h"

namespace qwen3moe::rpc {

std::string prometheus_text(const std::string& model_name, const EngineStats& stats,
                            const EngineMetrics& metrics);

}  // namespace qwen3moe::rpc
