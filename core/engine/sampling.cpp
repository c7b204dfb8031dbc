#include "core/engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/common/check.h"

namespace qwen3moe {

void validate(const SamplingParams& p) {
  QWEN3MOE_CHECK(std::isfinite(p.temperature) && p.temperature >= 0,
                 "temperature must be >= 0, got ", p.temperature);
  QWEN3MOE_CHECK(std::isfinite(p.top_p) && p.top_p > 0 && p.top_p <= 1,
                 "top_p must be in (0, 1], got ", p.top_p);
  QWEN3MOE_CHECK(p.top_k >= 0, "top_k must be >= 0, got ", p.top_k);
  QWEN3MOE_CHECK(std::isfinite(p.min_p) && p.min_p >= 0 && p.min_p <= 1,
                 "min_p must be in [0, 1], got ", p.min_p);
  QWEN3MOE_CHECK(std::isfinite(p.presence_penalty) && std::fabs(p.presence_penalty) <= 2,
                 "presence_penalty must be in [-2, 2], got ", p.presence_penalty);
  QWEN3MOE_CHECK(std::isfinite(p.frequency_penalty) && std::fabs(p.frequency_penalty) <= 2,
                 "frequency_penalty must be in [-2, 2], got ", p.frequency_penalty);
  QWEN3MOE_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0,
                 "repetition_penalty must be > 0 and finite, got ", p.repetition_penalty);
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {
  validate(p);
}

void Sampler::set_prompt(std::span<const int32_t> prompt) {
  if (p_.repetition_penalty != 1) prompt_tokens_.insert(prompt.begin(), prompt.end());
}

void Sampler::observe(int32_t token) {
  if (p_.has_penalties()) ++output_counts_[token];
}

const float* Sampler::penalized(const float* logits, int64_t vocab) const {
  if (!p_.has_penalties()) return logits;
  scratch_.assign(logits, logits + vocab);
  auto in_range = [&](int32_t id) { return id >= 0 && id < vocab; };
  if (p_.repetition_penalty != 1) {
    auto repeat = [&](int32_t id) {
      float& v = scratch_[size_t(id)];
      v = v > 0 ? v / p_.repetition_penalty : v * p_.repetition_penalty;
    };
    for (const int32_t id : prompt_tokens_)
      if (in_range(id)) repeat(id);
    for (const auto& [id, n] : output_counts_)
      if (in_range(id) && !prompt_tokens_.count(id)) repeat(id);
  }
  for (const auto& [id, n] : output_counts_)
    if (in_range(id)) scratch_[size_t(id)] -= p_.frequency_penalty * float(n) + p_.presence_penalty;
  return scratch_.data();
}

std::vector<double> Sampler::probabilities(const float* raw, int64_t vocab) const {
  const float* logits = penalized(raw, vocab);
  std::vector<double> prob(size_t(vocab), 0.0);
  if (p_.temperature == 0) {
    prob[size_t(argmax(logits, vocab))] = 1.0;
    return prob;
  }
  if (p_.top_k == 0 && p_.top_p >= 1.0f && p_.min_p == 0) {  // plain softmax: no ordering
    const double mx = double(logits[argmax(logits, vocab)]) / p_.temperature;
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i)
      sum += prob[size_t(i)] = std::exp(double(logits[i]) / p_.temperature - mx);
    for (double& v : prob) v /= sum;
    return prob;
  }
  // Candidates by descending logit (ties: lower id first).
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = p_.top_k > 0 ? std::min<int64_t>(p_.top_k, vocab) : vocab;
  auto cmp = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), cmp);
  order.resize(size_t(k));
  const double mx = double(logits[order[0]]) / p_.temperature;
  std::vector<double> e(static_cast<size_t>(k));
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    e[size_t(i)] = std::exp(double(logits[order[size_t(i)]]) / p_.temperature - mx);
    sum += e[size_t(i)];
  }
  // Nucleus: the smallest prefix whose mass reaches top_p (the first token always stays).
  int64_t keep = k;
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (int64_t i = 0; i < k; ++i) {
      cum += e[size_t(i)] / sum;
      if (cum >= double(p_.top_p)) {
        keep = i + 1;
        break;
      }
    }
  }
  // min-p: tokens below min_p x the top token's probability go (the ratio is the same before
  // and after renormalizing over what top-k and top-p kept); e[0] is the top token's.
  if (p_.min_p > 0)
    while (keep > 1 && e[size_t(keep - 1)] < double(p_.min_p) * e[0]) --keep;
  double kept = 0;
  for (int64_t i = 0; i < keep; ++i) kept += e[size_t(i)];
  for (int64_t i = 0; i < keep; ++i) prob[size_t(order[size_t(i)])] = e[size_t(i)] / kept;
  return prob;
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  const int32_t token = draw(logits, vocab);
  observe(token);
  return token;
}

int32_t Sampler::draw(const float* logits, int64_t vocab) {
  if (p_.temperature == 0) return argmax(penalized(logits, vocab), vocab);
  const std::vector<double> prob = probabilities(logits, vocab);
  const double u = rng_.uniform();
  double cum = 0;
  int32_t last = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    if (prob[size_t(i)] == 0) continue;
    cum += prob[size_t(i)];
    last = int32_t(i);
    if (u < cum) return int32_t(i);
  }
  return last;  // u landed in the rounding gap above the last cumulative sum
}

TokenLogprobs token_logprobs(const float* logits, int64_t vocab, int32_t id, int32_t n) {
  QWEN3MOE_CHECK(id >= 0 && id < vocab, "logprobs: id ", id, " outside [0, ", vocab, ")");
  const double mx = double(logits[argmax(logits, vocab)]);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  const double log_z = mx + std::log(sum);
  TokenLogprobs out;
  out.logprob = float(double(logits[id]) - log_z);
  const int64_t k = std::min<int64_t>(std::max(n, 0), vocab);
  if (k == 0) return out;
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (int64_t i = 0; i < k; ++i)
    out.top.emplace_back(order[size_t(i)], float(double(logits[order[size_t(i)]]) - log_z));
  return out;
}

}  // namespace qwen3moe
