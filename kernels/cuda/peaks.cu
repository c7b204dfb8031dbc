// The two ceilings of METHOD.md measured on the card itself: HBM bandwidth by a large device
// copy (read + write bytes), and the bf16 tensor-core rate by a large cuBLAS GEMM on random
// inputs. Events around the timed region; the median of several runs after a warm-up.
#include <algorithm>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/peaks.h"

namespace qwen3moe::cuda {
namespace {

// Milliseconds of each of reps runs of fn on stream s, after one untimed run.
template <typename F>
double median_ms(cudaStream_t s, int reps, F fn) {
  cudaEvent_t a, b;
  QWEN3MOE_CUDA_CHECK(cudaEventCreate(&a));
  QWEN3MOE_CUDA_CHECK(cudaEventCreate(&b));
  fn();
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    QWEN3MOE_CUDA_CHECK(cudaEventRecord(a, s));
    fn();
    QWEN3MOE_CUDA_CHECK(cudaEventRecord(b, s));
    QWEN3MOE_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    QWEN3MOE_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return double(ms[ms.size() / 2]);
}

}  // namespace

double measure_copy_bandwidth(size_t bytes, int reps) {
  cudaStream_t s;
  QWEN3MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  void *src = nullptr, *dst = nullptr;
  QWEN3MOE_CUDA_CHECK(cudaMalloc(&src, bytes));
  QWEN3MOE_CUDA_CHECK(cudaMalloc(&dst, bytes));
  fill_random(src, DType::F32, int64_t(bytes / 4), 7, 0.0f, 1.0f, s);
  const double ms = median_ms(s, reps, [&] {
    QWEN3MOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s));
  });
  QWEN3MOE_CUDA_CHECK(cudaFree(src));
  QWEN3MOE_CUDA_CHECK(cudaFree(dst));
  QWEN3MOE_CUDA_CHECK(cudaStreamDestroy(s));
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

double measure_bf16_gemm_peak(int n, int reps) {
  cudaStream_t s;
  QWEN3MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cublasHandle_t blas;
  QWEN3MOE_CUBLAS_CHECK(cublasCreate(&blas));
  QWEN3MOE_CUBLAS_CHECK(cublasSetStream(blas, s));
  const size_t nn = size_t(n) * size_t(n);
  void *a = nullptr, *b = nullptr, *c = nullptr;
  QWEN3MOE_CUDA_CHECK(cudaMalloc(&a, nn * 2));
  QWEN3MOE_CUDA_CHECK(cudaMalloc(&b, nn * 2));
  QWEN3MOE_CUDA_CHECK(cudaMalloc(&c, nn * 4));
  fill_random(a, DType::BF16, int64_t(nn), 1, 0.0f, 1.0f, s);
  fill_random(b, DType::BF16, int64_t(nn), 2, 0.0f, 1.0f, s);
  const float one = 1.0f, zero = 0.0f;
  const double ms = median_ms(s, reps, [&] {
    QWEN3MOE_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, a,
                                       CUDA_R_16BF, n, b, CUDA_R_16BF, n, &zero, c, CUDA_R_32F, n,
                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  });
  QWEN3MOE_CUDA_CHECK(cudaFree(a));
  QWEN3MOE_CUDA_CHECK(cudaFree(b));
  QWEN3MOE_CUDA_CHECK(cudaFree(c));
  cublasDestroy(blas);
  QWEN3MOE_CUDA_CHECK(cudaStreamDestroy(s));
  return 2.0 * double(n) * double(n) * double(n) / (ms * 1e-3) / 1e12;
}

std::string device_name() {
  int dev = 0;
  QWEN3MOE_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  QWEN3MOE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return prop.name;
}

}  // namespace qwen3moe::cuda
