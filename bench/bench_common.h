// What both benches (CPU in cmd_bench.cpp, CUDA in bench_cuda.cpp) count the same way.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/checkpoint/config.h"

namespace qwen3moe::bench {

inline double bench_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// FLOPs of one prefill of T tokens: 2 per active weight per token (active_params includes the
// lm_head, which counts only for the last position, the one whose logits are taken), plus
// attention's QK^T and PV over the causal triangle.
inline double prefill_flops(const ModelConfig& c, double active_params, int64_t T) {
  const double attn =
      2.0 * 2.0 * double(c.num_hidden_layers) * double(c.q_dim()) * double(T) * double(T + 1) / 2.0;
  // At most what active_params holds: a count of one rank's slice must not go negative.
  const double lm_head = std::min(double(c.vocab_size) * double(c.hidden_size), active_params);
  return 2.0 * (active_params - lm_head) * double(T) + 2.0 * lm_head + attn;
}

// The first line of both benches' output: architecture, depth, width, experts.
inline void print_model_line(const ModelConfig& c) {
  const std::string moe = c.is_moe() ? std::to_string(c.num_experts) + " experts top-" +
                                           std::to_string(c.num_experts_per_tok)
                                     : "dense";
  std::printf("model          %s, %lld layers, hidden %lld, %s\n", c.architecture.c_str(),
              (long long)c.num_hidden_layers, (long long)c.hidden_size, moe.c_str());
}

}  // namespace qwen3moe::bench
