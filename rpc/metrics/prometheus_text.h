// The serving metrics in the Prometheus text exposition format (version 0.0.4), named as vLLM
// names its own with our prefix (vllm:time_to_first_token_seconds is
// qwen3moe:time_to_first_token_seconds here, same buckets), so its dashboards port over by
// renaming the prefix; plus ours, from rank 0's always-on exchange totals: the all-to-all bytes
// per MoE layer and phase, their seconds where the backend is timed on the host, and the tokens
// each of rank 0's experts received.
#pragma once

#include <cstdint>
#include <string>

#include "core/engine/engine.h"
#include "parallel/moe/exchange_counters.h"

namespace qwen3moe::rpc {

// exchange: null for a dense model; its snapshot is taken here.
std::string prometheus_text(const std::string& model_name, const EngineStats& stats,
                            const EngineMetrics& metrics, const ExchangeCounters* exchange);

}  // namespace qwen3moe::rpc
