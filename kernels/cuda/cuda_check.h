// The CUDA members of the project's one check family (kernels/common/check.h): a failed CUDA or
// cuBLAS call becomes a qwen3moe::Error naming the call, file:line and the library's message.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/common/check.h"

#define QWEN3MOE_CUDA_CHECK(call)                                                              \
  do {                                                                                         \
    const cudaError_t err_ = (call);                                                           \
    if (err_ != cudaSuccess)                                                                   \
      ::qwen3moe::detail::fail(__FILE__, __LINE__, #call, " failed: ", cudaGetErrorName(err_), \
                               ": ", cudaGetErrorString(err_));                                \
  } while (0)

#define QWEN3MOE_CUBLAS_CHECK(call)                                                              \
  do {                                                                                           \
    const cublasStatus_t st_ = (call);                                                           \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                            \
      ::qwen3moe::detail::fail(__FILE__, __LINE__, #call, " failed: ", cublasGetStatusName(st_), \
                               ": ", cublasGetStatusString(st_));                                \
  } while (0)

// After a kernel launch: the launch itself (bad configuration) fails here.
#define QWEN3MOE_CUDA_LAUNCHED() QWEN3MOE_CUDA_CHECK(cudaGetLastError())
