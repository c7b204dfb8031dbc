// The tensors a Hugging Face Qwen3 / Qwen3-MoE checkpoint holds for a config: names, shapes and
// what kind of weight each is. Used to write random checkpoints and to count parameters.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

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

}  // namespace qwen3moe
