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

std::vector<double> Sampler::probabilities(const float* logits, int64_t vocab) const {
  std::vector<double> prob(size_t(vocab), 0.0);
  if (p_.temperature == 0) {
    prob[size_t(argmax(logits, vocab))] = 1.0;
    return prob;
  }
  if (p_.top_k == 0 && p_.top_p >= 1.0f) {  // plain softmax: no ordering needed
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
  double kept = 0;
  for (int64_t i = 0; i < keep; ++i) kept += e[size_t(i)];
  for (int64_t i = 0; i < keep; ++i) prob[size_t(order[size_t(i)])] = e[size_t(i)] / kept;
  return prob;
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (p_.temperature == 0) return argmax(logits, vocab);
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

}  // namespace qwen3moe
