// Token sampling on rank 0: greedy (temperature 0), or penalties -> temperature -> top-k ->
// top-p -> min-p (the order of Hugging Face's logits processors; vLLM applies min-p before
// top-k and top-p, which differs only where both min-p and top-p cut) and a draw from a seeded
// generator, so the same seed gives the same tokens on every machine.
// Penalties (repetition over prompt + output, presence and frequency over the output, as vLLM
// and the OpenAI API define them) also apply to greedy decoding: they change the argmax.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "kernels/common/rng.h"

namespace qwen3moe {

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy
  float top_p = 1.0f;               // (0, 1]
  int32_t top_k = 0;                // 0: all
  float min_p = 0.0f;               // [0, 1]: keep tokens of at least min_p x the top probability
  float presence_penalty = 0.0f;    // [-2, 2]: subtracted once from every token already generated
  float frequency_penalty = 0.0f;   // [-2, 2]: subtracted per occurrence in the output
  float repetition_penalty = 1.0f;  // > 0: logits of prompt and output tokens divided by it (> 0)
                                    // or multiplied (< 0), as transformers does; 1 is off
  uint64_t seed = 0;

  bool has_penalties() const {
    return presence_penalty != 0 || frequency_penalty != 0 || repetition_penalty != 1;
  }
};

// Checks ranges; the Error names the parameter and the value.
void validate(const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // Tokens the repetition penalty covers besides the output (the prompt); call once, first.
  void set_prompt(std::span<const int32_t> prompt);
  // A token the sequence produced: counted by the penalties from the next draw on (sample()
  // observes its own picks; this is for tokens that came from elsewhere).
  void observe(int32_t token);
  // Draws (or, greedy, picks) a token from one row of logits [vocab] and observes it.
  int32_t sample(const float* logits, int64_t vocab);
  // The distribution sample() draws from (zeros outside top-k / top-p / min-p); for tests.
  std::vector<double> probabilities(const float* logits, int64_t vocab) const;

 private:
  // logits with the penalties applied (a copy in scratch_), or logits itself without any.
  const float* penalized(const float* logits, int64_t vocab) const;
  int32_t draw(const float* logits, int64_t vocab);

  SamplingParams p_;
  Rng rng_;
  std::unordered_set<int32_t> prompt_tokens_;
  std::unordered_map<int32_t, int32_t> output_counts_;
  mutable std::vector<float> scratch_;
};

int32_t argmax(const float* logits, int64_t n);

// log softmax(logits)[id] of a raw row, and the n most likely ids with theirs (descending; ties:
// lower id first): what a request's logprobs report (the model's distribution, before any
// penalty or temperature, as vLLM reports raw logprobs).
struct TokenLogprobs {
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // [n] (id, logprob)
};
TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t id, int32_t n);

}  // namespace qwen3moe
