// Elementwise and row-movement kernels: SiLU-mul, add, embedding rows, KV-cache writes, the
// dispatch gather and the combine's weighted scatter-add. Grid-stride loops, one element per
// thread per iteration; all memory-bound.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kv_element.cuh"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

__global__ void silu_mul_kernel(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

template <typename T>
__device__ float to_f32(T v);
template <>
__device__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ float to_f32<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ float to_f32<float>(float v) {
  return v;
}

// One block per token; rows outside this rank's vocabulary slice are zeros.
template <typename T>
__global__ void embedding_kernel(float* out, const T* table, int64_t rows, int64_t cols, int64_t ld,
                                 const int32_t* ids, int64_t row_offset) {
  const int64_t t = blockIdx.x;
  const int64_t row = int64_t(ids[t]) - row_offset;
  float* o = out + t * cols;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    o[j] = (row >= 0 && row < rows) ? to_f32(table[row * ld + j]) : 0.0f;
}

__global__ void kv_write_kernel(KvCacheView cache, const float* k, const float* v,
                                const int32_t* slots, int64_t kv_dim, int64_t head_dim) {
  const int64_t t = blockIdx.x;
  const int64_t s = slots[t];
  if (s == kPaddingSlot) return;  // a padding token keeps nothing
  const bool fp8 = cache.dtype == DType::F8E4M3;
  for (int64_t j = threadIdx.x; j < kv_dim; j += blockDim.x) {
    const int64_t h = j / head_dim;
    kv_store(cache.k, cache.dtype, s * kv_dim + j, k[t * kv_dim + j], fp8 ? cache.k_scale[h] : 1);
    kv_store(cache.v, cache.dtype, s * kv_dim + j, v[t * kv_dim + j], fp8 ? cache.v_scale[h] : 1);
  }
}

__global__ void gather_kernel(float* out, const float* in, const int32_t* idx, int64_t dim) {
  const int64_t i = blockIdx.x;
  const float* src = in + int64_t(idx[i]) * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) out[i * dim + j] = src[j];
}

__global__ void to_bf16_kernel(uint16_t* out, const float* in, const int32_t* idx, int64_t dim) {
  const int64_t i = blockIdx.x;
  const float* src = in + (idx ? int64_t(idx[i]) : i) * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    // The CPU twin's bits (f32_to_bf16): round to nearest even, NaN keeps sign and payload.
    const uint32_t b = __float_as_uint(src[j]);
    out[i * dim + j] = (b & 0x7fffffffu) > 0x7f800000u
                           ? uint16_t((b >> 16) | 0x40u)
                           : uint16_t((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
  }
}

__global__ void to_f32_kernel(float* out, const uint16_t* in, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __uint_as_float(uint32_t(in[i]) << 16);
}

}  // namespace

void silu_mul(float* out, const float* gate, const float* up, int64_t rows, int64_t dim,
              cudaStream_t stream) {
  const int64_t n = rows * dim;
  if (n == 0) return;
  silu_mul_kernel<<<blocks_for(n), kThreads, 0, stream>>>(out, gate, up, n);
  QWEN3MOE_CUDA_LAUNCHED();
}

void add(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(y, x, n);
  QWEN3MOE_CUDA_LAUNCHED();
}

void embedding(float* out, const Weight& table, const int32_t* ids, int64_t tokens,
               int64_t row_offset, cudaStream_t stream) {
  if (tokens == 0) return;
  switch (table.dtype) {
    case DType::BF16:
      embedding_kernel<<<int(tokens), kThreads, 0, stream>>>(
          out, static_cast<const __nv_bfloat16*>(table.data), table.rows, table.cols, table.ld, ids,
          row_offset);
      break;
    case DType::F16:
      embedding_kernel<<<int(tokens), kThreads, 0, stream>>>(
          out, static_cast<const __half*>(table.data), table.rows, table.cols, table.ld, ids,
          row_offset);
      break;
    case DType::F32:
      embedding_kernel<<<int(tokens), kThreads, 0, stream>>>(
          out, static_cast<const float*>(table.data), table.rows, table.cols, table.ld, ids,
          row_offset);
      break;
    default:
      QWEN3MOE_FAIL("embedding: unsupported dtype ", dtype_name(table.dtype));
  }
  QWEN3MOE_CUDA_LAUNCHED();
}

void kv_cache_write(const KvCacheView& cache, const float* k, const float* v, const int32_t* slots,
                    int64_t tokens, int64_t kv_dim, int64_t head_dim, cudaStream_t stream) {
  if (tokens == 0) return;
  kv_write_kernel<<<int(tokens), kThreads, 0, stream>>>(cache, k, v, slots, kv_dim, head_dim);
  QWEN3MOE_CUDA_LAUNCHED();
}

void gather_rows(float* out, const float* in, const int32_t* idx, int64_t n, int64_t dim,
                 cudaStream_t stream) {
  if (n == 0) return;
  gather_kernel<<<int(n), kThreads, 0, stream>>>(out, in, idx, dim);
  QWEN3MOE_CUDA_LAUNCHED();
}

void rows_to_bf16(uint16_t* out, const float* in, const int32_t* idx, int64_t n, int64_t dim,
                  cudaStream_t stream) {
  if (n == 0 || dim == 0) return;
  to_bf16_kernel<<<int(n), kThreads, 0, stream>>>(out, in, idx, dim);
  QWEN3MOE_CUDA_LAUNCHED();
}

void rows_to_f32(float* out, const uint16_t* in, int64_t n, int64_t dim, cudaStream_t stream) {
  const int64_t total = n * dim;
  if (total == 0) return;
  to_f32_kernel<<<int((total + kThreads - 1) / kThreads), kThreads, 0, stream>>>(out, in, total);
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
