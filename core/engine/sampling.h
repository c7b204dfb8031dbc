// Token sampling on rank 0: greedy (temperature 0), or temperature -> top-k -> top-p (the
// order of Hugging Face's logits processors) and a draw from a seeded generator, so the same
// seed gives the same tokens on every machine.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common/rng.h"

namespace qwen3moe {

struct SamplingParams {
  float temperature = 1.0f;  // 0: greedy
  float top_p = 1.0f;        // (0, 1]
  int32_t top_k = 0;         // 0: all
  uint64_t seed = 0;
};

// Checks ranges; the Error names the parameter and the value.
void validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  int32_t sample(const float* logits, int64_t vocab);
  // The distribution sample() draws from (zeros outside top-k / top-p); for tests.
  std::vector<double> probabilities(const float* logits, int64_t vocab) const;

 private:
  SamplingParams p_;
  Rng rng_;
};

int32_t argmax(const float* logits, int64_t n);

}  // namespace qwen3moe
