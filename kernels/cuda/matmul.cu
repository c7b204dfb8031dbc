// y = x · w^T on tensor cores with f32-activation accuracy: x (f32) is split into bf16 hi and
// lo halves (x - hi rounded again), both stacked as 2M rows of one cuBLAS GEMM against the bf16
// weights with f32 accumulation, and the two halves of the product summed (+ bias). The weight
// matrix, which bounds decode, is read once; the error is that of a 16-bit-mantissa x.
// f32 weights take a plain SGEMM (no TF32); block-scaled fp8 ones moe_matmul.cu's kernels.
#include <cuda_bf16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kThreads = 256;

size_t align256(size_t b) {
  return (b + 255) / 256 * 256;
}

__global__ void split_kernel(__nv_bfloat16* out, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    const __nv_bfloat16 hi = __float2bfloat16_rn(v);
    out[i] = hi;
    out[n + i] = __float2bfloat16_rn(v - __bfloat162float(hi));
  }
}

__global__ void sum_halves_kernel(float* y, const float* c, const float* bias, int64_t m,
                                  int64_t n) {
  const int64_t total = m * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = c[i] + c[total + i] + (bias ? bias[i % n] : 0.0f);
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t m, int64_t n) {
  const int64_t total = m * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] += bias[i % n];
}

int blocks_for(int64_t n) {
  return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
}

}  // namespace

size_t matmul_workspace_bytes(int64_t m, int64_t n, int64_t k) {
  return align256(size_t(2 * m * k) * sizeof(__nv_bfloat16)) + size_t(2 * m * n) * sizeof(float);
}

void matmul(float* y, const float* x, const Weight& w, int64_t m, const float* bias,
            const GemmWorkspace& ws, cublasHandle_t blas, cudaStream_t stream) {
  const int64_t N = w.rows, K = w.cols;
  if (m == 0 || N == 0) return;
  const float one = 1.0f, zero = 0.0f;
  if (w.dtype == DType::F32) {
    // Column-major view: y^T[N, M] = w[K, N]^T · x^T[K, M].
    QWEN3MOE_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(m), int(K), &one,
                                      static_cast<const float*>(w.data), int(w.ld), x, int(K),
                                      &zero, y, int(N)));
    if (bias) {
      add_bias_kernel<<<blocks_for(m * N), kThreads, 0, stream>>>(y, bias, m, N);
      QWEN3MOE_CUDA_LAUNCHED();
    }
    return;
  }
  if (w.dtype == DType::F8E4M3) {
    fp8_matmul(y, x, w, m, stream);
    if (bias) {
      add_bias_kernel<<<blocks_for(m * N), kThreads, 0, stream>>>(y, bias, m, N);
      QWEN3MOE_CUDA_LAUNCHED();
    }
    return;
  }
  QWEN3MOE_CHECK(w.dtype == DType::BF16, "CUDA matmul: weights of dtype ", dtype_name(w.dtype),
                 " are not supported (bf16, f32 and block-scaled fp8 are)");
  QWEN3MOE_CHECK(ws.bytes >= matmul_workspace_bytes(m, N, K), "CUDA matmul: workspace of ",
                 ws.bytes, " bytes, needs ", matmul_workspace_bytes(m, N, K));
  auto* x2 = static_cast<__nv_bfloat16*>(ws.ptr);  // [2M, K]
  auto* c = reinterpret_cast<float*>(
      static_cast<char*>(ws.ptr) + align256(size_t(2 * m * K) * sizeof(__nv_bfloat16)));  // [2M, N]
  split_kernel<<<blocks_for(m * K), kThreads, 0, stream>>>(x2, x, m * K);
  QWEN3MOE_CUDA_LAUNCHED();
  QWEN3MOE_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(2 * m), int(K),
                                     &one, w.data, CUDA_R_16BF, int(w.ld), x2, CUDA_R_16BF, int(K),
                                     &zero, c, CUDA_R_32F, int(N), CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
  sum_halves_kernel<<<blocks_for(m * N), kThreads, 0, stream>>>(y, c, bias, m, N);
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
