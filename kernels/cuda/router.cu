// Router: softmax over the experts in f32, top-k by repeated selection (ties to the lower
// expert id, like the CPU twin), weights renormalised iff normalize. One warp per token: each
// lane holds the probabilities of experts lane, lane+32, ... in registers, and every
// selection is a warp argmax by shuffles. (The first version ran one thread per token over all
// experts, k+1 passes of expf: ~13 us a layer at batch 1, longer than the layer's weights take
// to stream.)
#include <cfloat>
#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kMaxExperts = 512;
constexpr int kPerLane = kMaxExperts / 32;
constexpr int kWarps = 4;  // tokens per block
constexpr unsigned kFull = 0xffffffffu;

__global__ void router_kernel(int32_t* ids, float* weights, const float* logits, int64_t tokens,
                              int64_t experts, int64_t k, bool normalize) {
  const int lane = threadIdx.x % 32;
  const int64_t t = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (t >= tokens) return;  // whole warps
  const float* l = logits + t * experts;
  float p[kPerLane];
  float mx = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int e = lane + 32 * i;
    p[i] = e < experts ? l[e] : -FLT_MAX;
    mx = fmaxf(mx, p[i]);
  }
  for (int d = 16; d > 0; d /= 2) mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, d));
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    if (lane + 32 * i < experts) {
      p[i] = expf(p[i] - mx);
      sum += p[i];
    }
  }
  for (int d = 16; d > 0; d /= 2) sum += __shfl_xor_sync(kFull, sum, d);
    // Probabilities as the CPU twin has them (exp / sum); taken or absent experts are -1.
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) p[i] = lane + 32 * i < experts ? p[i] / sum : -1.0f;
  float topsum = 0.0f;
  for (int64_t j = 0; j < k; ++j) {
    float bp = -2.0f;
    int be = INT_MAX;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      if (p[i] > bp) {  // ascending ids within a lane: strict keeps the lower id
        bp = p[i];
        be = lane + 32 * i;
      }
    for (int d = 16; d > 0; d /= 2) {
      const float op = __shfl_xor_sync(kFull, bp, d);
      const int oe = __shfl_xor_sync(kFull, be, d);
      if (op > bp || (op == bp && oe < be)) {
        bp = op;
        be = oe;
      }
    }
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
      if (lane + 32 * i == be) p[i] = -1.0f;
    if (lane == 0) {
      ids[t * k + j] = int32_t(be);
      weights[t * k + j] = bp;
    }
    topsum += bp;  // every lane holds the same bp: the sum in the CPU twin's order
  }
  if (normalize && lane == 0)
    for (int64_t j = 0; j < k; ++j) weights[t * k + j] /= topsum;
}

}  // namespace

void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens, int64_t experts,
                 int64_t k, bool normalize, cudaStream_t stream) {
  QWEN3MOE_CHECK(experts <= kMaxExperts, "router: ", experts, " experts exceed the CUDA kernel's ",
                 kMaxExperts);
  QWEN3MOE_CHECK(k >= 1 && k <= experts, "router: top-", k, " of ", experts, " experts");
  if (tokens == 0) return;
  router_kernel<<<int((tokens + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(
      ids, weights, logits, tokens, experts, k, normalize);
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
