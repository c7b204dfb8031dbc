// The serving metrics in the Prometheus text exposition format (version 0.0.4), named as vLLM
// names its own with our prefix (vllm:time_to_first_token_seconds is
// qwen3moe:time_to_first_token_seconds here, same buckets), so its dashboards port over by
// renaming the prefix; plus ours: the all-to-all bytes and time per layer and phase and the
// tokens each expert received, from the all-to-all profiler's totals when it runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/engine/engine.h"

namespace qwen3moe::rpc {

// Per-layer all-to-all totals of rank 0 (empty when the profiler is off).
struct ExchangeTotals {
  struct Layer {
    int64_t layer = 0;
    uint64_t dispatch_bytes = 0, combine_bytes = 0;     // sent by rank 0 (to peers and itself)
    double dispatch_seconds = 0, combine_seconds = 0;   // wait + transfer
    std::vector<std::pair<int64_t, uint64_t>> experts;  // (global expert id, token-expert pairs)
  };
  std::vector<Layer> layers;
};

std::string prometheus_text(const std::string& model_name, const EngineStats& stats,
                            const EngineMetrics& metrics, const ExchangeTotals& exchange);

}  // namespace qwen3moe::rpc
