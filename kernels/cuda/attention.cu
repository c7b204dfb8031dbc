// Causal attention over the paged KV cache: one block per (token, q head), online softmax over
// chunks of cache positions. A chunk's scores go to shared memory (one position per thread),
// then every thread owns output dimensions and folds the chunk's values into its running sum.
// Correct first: the decode kernel tuned for full HBM bandwidth is the next step (issue 7).
#include <cfloat>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kv_element.cuh"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kThreads = 128;         // also the chunk of positions scored at once
constexpr int kMaxDimsPerThread = 4;  // head_dim <= 512

__global__ void attention_kernel(float* out, const float* q, KvCacheView cache,
                                 AttentionBatch batch, int64_t q_heads, int64_t kv_heads,
                                 int64_t head_dim, float scale) {
  const int64_t t = blockIdx.x / q_heads, h = blockIdx.x % q_heads;
  const int64_t kvh = h / (q_heads / kv_heads), kv_dim = kv_heads * head_dim;
  const int64_t bs = batch.block_size;
  const int32_t* table =
      batch.block_tables + int64_t(batch.token_seq[t]) * batch.max_blocks_per_seq;
  const int64_t len = int64_t(batch.positions[t]) + 1;
  const float* qv = q + (t * q_heads + h) * head_dim;
  const bool fp8 = cache.dtype == DType::F8E4M3;
  const float k_scale = fp8 ? cache.k_scale[kvh] : 1.0f, v_scale = fp8 ? cache.v_scale[kvh] : 1.0f;

  __shared__ float scores[kThreads];
  __shared__ float red[kThreads];
  float acc[kMaxDimsPerThread];
  for (int d = 0; d < kMaxDimsPerThread; ++d) acc[d] = 0.0f;
  float m = -FLT_MAX, l = 0.0f;

  for (int64_t c = 0; c < len; c += kThreads) {
    const int64_t p = c + threadIdx.x;
    float s = -FLT_MAX;
    if (p < len) {
      const int64_t slot = int64_t(table[p / bs]) * bs + p % bs;
      const int64_t at = slot * kv_dim + kvh * head_dim;
      float dot = 0.0f;
      for (int64_t d = 0; d < head_dim; ++d)
        dot += qv[d] * kv_load(cache.k, cache.dtype, at + d, k_scale);
      s = dot * scale;
    }
    scores[threadIdx.x] = s;
    red[threadIdx.x] = s;
    __syncthreads();
    for (int st = kThreads / 2; st > 0; st >>= 1) {
      if (threadIdx.x < st) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + st]);
      __syncthreads();
    }
    const float new_m = fmaxf(m, red[0]);
    const float alpha = expf(m - new_m);
    __syncthreads();
    const int64_t n = min(int64_t(kThreads), len - c);
    float chunk_l = 0.0f;
    for (int64_t i = 0; i < n; ++i) chunk_l += expf(scores[i] - new_m);
    for (int d = 0; d < kMaxDimsPerThread; ++d) {
      const int64_t dim = threadIdx.x + int64_t(d) * kThreads;
      if (dim >= head_dim) break;
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pp = c + i;
        const int64_t slot = int64_t(table[pp / bs]) * bs + pp % bs;
        sum += expf(scores[i] - new_m) *
               kv_load(cache.v, cache.dtype, slot * kv_dim + kvh * head_dim + dim, v_scale);
      }
      acc[d] = acc[d] * alpha + sum;
    }
    l = l * alpha + chunk_l;
    m = new_m;
    __syncthreads();
  }
  float* o = out + (t * q_heads + h) * head_dim;
  for (int d = 0; d < kMaxDimsPerThread; ++d) {
    const int64_t dim = threadIdx.x + int64_t(d) * kThreads;
    if (dim < head_dim) o[dim] = acc[d] / l;
  }
}

}  // namespace

void attention(float* out, const float* q, const KvCacheView& cache, const AttentionBatch& batch,
               int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale,
               cudaStream_t stream) {
  QWEN3MOE_CHECK(head_dim <= int64_t(kThreads) * kMaxDimsPerThread, "attention: head_dim ",
                 head_dim, " exceeds the CUDA kernel's ", kThreads * kMaxDimsPerThread);
  if (batch.num_tokens == 0) return;
  attention_kernel<<<int(batch.num_tokens * q_heads), kThreads, 0, stream>>>(
      out, q, cache, batch, q_heads, kv_heads, head_dim, scale);
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
