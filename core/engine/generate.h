// Single-sequence generation: one batched prefill of the prompt, then one decode step per new
// token, sampling on rank 0 and broadcasting the choice so every rank stays in lockstep. With
// DP groups the sequence runs in group 0 (rank 0's) and the other groups join each step's
// MoE exchanges with no tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/engine/sampling.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe {

struct GenerationOptions {
  int32_t max_new_tokens = 32;
  SamplingParams sampling;
  bool ignore_eos = false;
  // Ids that end generation like config.json's eos (generation_config.json's eos list).
  std::vector<int32_t> stop_token_ids;
  // Set: each forward is one profiler step (0 = the prefill, then one per decode token).
  A2aProfiler* profiler = nullptr;
};

struct GenerationResult {
  std::vector<int32_t> output_ids;
  std::string finish_reason;  // "stop" (EOS) | "length"
  double prefill_seconds = 0;
  double decode_seconds = 0;  // all decode steps together
};

// Checks ids against the vocabulary and the prompt length against the context; the Error
// names the bad id or the lengths.
void validate_prompt(const ModelConfig& config, const std::vector<int32_t>& prompt);

// Runs prefill over the prompt into a fresh sequence; on_token (may be empty) sees every new
// id as soon as it is chosen.
GenerationResult generate(Model& model, Communicator& comm, KvCache& cache,
                          const std::vector<int32_t>& prompt, const GenerationOptions& options,
                          const std::function<void(int32_t)>& on_token = {});

// One prefill over ids; logits of every position, [T, V].
std::vector<float> prefill_logits(Model& model, KvCache& cache, const std::vector<int32_t>& ids);

}  // namespace qwen3moe
