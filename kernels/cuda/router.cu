// Router: softmax over the experts in f32, top-k by repeated selection (ties to the lower
// expert id, like the CPU twin), weights renormalised iff normalize. One thread per token:
// E and k are small (128 and 8 for Qwen3-MoE).
#include <cfloat>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kMaxExperts = 512;

__global__ void router_kernel(int32_t* ids, float* weights, const float* logits, int64_t tokens,
                              int64_t experts, int64_t k, bool normalize) {
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t >= tokens) return;
  const float* l = logits + t * experts;
  float mx = -FLT_MAX;
  for (int64_t e = 0; e < experts; ++e) mx = fmaxf(mx, l[e]);
  float sum = 0.0f;
  for (int64_t e = 0; e < experts; ++e) sum += expf(l[e] - mx);
  uint32_t taken[kMaxExperts / 32] = {};
  float topsum = 0.0f;
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    float best_p = -1.0f;
    for (int64_t e = 0; e < experts; ++e) {
      if (taken[e / 32] & (1u << (e % 32))) continue;
      const float p = expf(l[e] - mx) / sum;
      if (p > best_p) {  // strict: equal probabilities keep the lower id
        best_p = p;
        best = e;
      }
    }
    taken[best / 32] |= 1u << (best % 32);
    ids[t * k + j] = int32_t(best);
    weights[t * k + j] = best_p;
    topsum += best_p;
  }
  if (normalize)
    for (int64_t j = 0; j < k; ++j) weights[t * k + j] /= topsum;
}

}  // namespace

void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens,
                 int64_t experts, int64_t k, bool normalize, cudaStream_t stream) {
  QWEN3MOE_CHECK(experts <= kMaxExperts, "router: ", experts, " experts exceed the CUDA kernel's ",
                 kMaxExperts);
  if (tokens == 0) return;
  router_kernel<<<int((tokens + 127) / 128), 128, 0, stream>>>(ids, weights, logits, tokens,
                                                               experts, k, normalize);
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
