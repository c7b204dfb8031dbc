// MoE router: softmax over all experts in f32, then top-k, then (iff norm_topk_prob) the k
// weights renormalised to sum 1, exactly the order of operations of Hugging Face's Qwen3-MoE.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/ops.h"

namespace qwen3moe::cpu {

void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens, int64_t experts,
                 int64_t k, bool normalize) {
  std::vector<float> p(experts);
  std::vector<int32_t> order(experts);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* l = logits + t * experts;
    const float mx = *std::max_element(l, l + experts);
    float sum = 0;
    for (int64_t e = 0; e < experts; ++e) {
      p[e] = std::exp(l[e] - mx);
      sum += p[e];
    }
    for (int64_t e = 0; e < experts; ++e) p[e] /= sum;
    for (int64_t e = 0; e < experts; ++e) order[e] = int32_t(e);
    // Larger probability first; equal ones keep the lower expert id first (torch.topk on CPU).
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
    float topsum = 0;
    for (int64_t j = 0; j < k; ++j) topsum += p[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      ids[t * k + j] = order[j];
      weights[t * k + j] = normalize ? p[order[j]] / topsum : p[order[j]];
    }
  }
}

}  // namespace qwen3moe::cpu
