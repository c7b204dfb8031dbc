// RMSNorm (one block per row, sum of squares reduced in the block) and rotate-half RoPE with
// Hugging Face's f32 angle from the given inv_freq table, as kernels/cpu/norm_rope.cpp.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void rmsnorm_kernel(float* y, const float* x, const float* w, int64_t dim, float eps) {
  const float* xr = x + blockIdx.x * dim;
  float* yr = y + blockIdx.x * dim;
  double ss = 0;  // double like the CPU twin: rows can be thousands wide
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) ss += double(xr[i]) * double(xr[i]);
  __shared__ double partial[kThreads];
  partial[threadIdx.x] = ss;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  const float inv = float(1.0 / sqrt(partial[0] / double(dim) + double(eps)));
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = w[i] * (xr[i] * inv);
}

// One block per token, threads over (head, pair).
__global__ void rope_kernel(float* x, const int32_t* positions, int64_t heads, int64_t head_dim,
                            const float* inv_freq, float scale) {
  const int64_t t = blockIdx.x, half = head_dim / 2;
  const float pos = float(positions[t]);
  for (int64_t e = threadIdx.x; e < heads * half; e += blockDim.x) {
    const int64_t h = e / half, i = e % half;
    const float angle = pos * inv_freq[i];
    const float c = float(cos(double(angle))) * scale, s = float(sin(double(angle))) * scale;
    float* v = x + (t * heads + h) * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

}  // namespace

void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps,
             cudaStream_t stream) {
  if (rows == 0) return;
  rmsnorm_kernel<<<int(rows), kThreads, 0, stream>>>(y, x, w, dim, eps);
  QWEN3MOE_CUDA_LAUNCHED();
}

void rope(float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
          const float* inv_freq, float scale, cudaStream_t stream) {
  if (tokens == 0) return;
  rope_kernel<<<int(tokens), kThreads, 0, stream>>>(x, positions, heads, head_dim, inv_freq, scale);
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
