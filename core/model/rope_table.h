// The rotary embedding's per-pair frequencies and its cos/sin scale, from config.json's
// rope_theta and rope_scaling, as transformers builds them: plain RoPE (theta^(-2i/d)), or YaRN
// (_compute_yarn_parameters: the pretrained frequencies kept for the fast-rotating pairs,
// divided by the factor for the slow ones, a linear ramp between over the correction range,
// and cos and sin scaled by the attention factor).
#pragma once

#include <vector>

#include "core/checkpoint/config.h"

namespace qwen3moe {

struct RopeTable {
  std::vector<float> inv_freq;  // [head_dim / 2]
  float scale = 1;              // cos and sin are multiplied by it (YaRN's attention factor)
};

RopeTable rope_table(const ModelConfig& config);

}  // namespace qwen3moe
