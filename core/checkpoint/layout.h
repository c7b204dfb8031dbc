// The tensors a Hugging Face Qwen3 / Qwen3-MoE checkpoint holds for a config: names, shapes and
// what kind of weight each is. Used to write random checkpoints and to count parameters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/checkpoint/config.h"

namespace qwen3moe {

enum class TensorKind { kNorm, kRouter, kMatrix, kEmbedding, kBias };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorKind kind;
  int64_t layer = -1;   // -1: not in a layer
  int64_t expert = -1;  // -1: not an expert weight
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

std::vector<TensorSpec> checkpoint_layout(const ModelConfig& config);

// How random weights of each kind are drawn (the test fixtures' scheme), on the host by
// write_random_checkpoint and on the device by Model's random weights: norms 1 + 0.2·N,
// the router std 1 so top-k choices are sharp, biases std 0.02, matrices and embeddings std
// 1/sqrt(fan_in).
struct RandomInit {
  double mean = 0, std = 1;
};
RandomInit random_init(TensorKind kind, int64_t fan_in);

// The stable hash of a tensor's name (FNV-1a) that random weights are seeded with.
uint64_t tensor_name_hash(const std::string& name);

}  // namespace qwen3moe
