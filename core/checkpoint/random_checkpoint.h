// Random Hugging Face checkpoints drawn like the test fixtures (norm weights 1 + 0.2·N(0,1),
// router std 1.0 so top-k choices are sharp, other matrices std 1/sqrt(fan_in)), in bf16 with
// the official tensor names, or as Qwen's FP8 releases store them (every projection F8_E4M3
// with a weight_scale_inv per 128x128 block, the rest bf16). The demo and the benchmarks need
// no download.
#pragma once

#include <cstdint>
#include <string>

namespace qwen3moe {

struct RandomCheckpointOptions {
  uint64_t seed = 0;
  uint64_t max_shard_bytes = 2ull << 30;  // over this, shards + model.safetensors.index.json
  bool progress = false;                  // a progress bar on stderr
  std::string dtype = "bf16";             // "bf16" | "fp8" (block-scaled, 128x128)
};

// Reads and validates config_path, writes out_dir/config.json (the same text) and weights.
void write_random_checkpoint(const std::string& config_path, const std::string& out_dir,
                             const RandomCheckpointOptions& options);

}  // namespace qwen3moe
