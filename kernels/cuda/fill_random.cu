// Random weights made on the device (bench --random-weights --backend cuda): the hash of
// kernels/common/random_hash.h per element, the same bits as the CPU twin, at write bandwidth.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include "kernels/common/random_hash.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

template <typename T>
__global__ void fill_random_kernel(T* dst, int64_t n, uint64_t seed, float mean, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    // One explicit FMA (one rounding), as the CPU twin's std::fma.
    const float v = __fmaf_rn(scale, random_unit(seed, i), mean);
    if constexpr (sizeof(T) == 2)
      dst[i] = __float2bfloat16_rn(v);
    else if constexpr (sizeof(T) == 1)  // nearest even, saturating: the CPU's f32_to_fp8_e4m3
      dst[i] = uint8_t(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
    else
      dst[i] = v;
  }
}

}  // namespace

void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean, float std,
                 cudaStream_t stream) {
  if (n == 0) return;
  const float scale = std * 1.7320508f;  // the CPU twin's expression, bit for bit
  const int blocks = int(std::min<int64_t>((n + 255) / 256, 132 * 64));
  switch (dtype) {
    case DType::BF16:
      fill_random_kernel<<<blocks, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(dst), n, seed,
                                                     mean, scale);
      break;
    case DType::F32:
      fill_random_kernel<<<blocks, 256, 0, stream>>>(static_cast<float*>(dst), n, seed, mean,
                                                     scale);
      break;
    case DType::F8E4M3:
      fill_random_kernel<<<blocks, 256, 0, stream>>>(static_cast<uint8_t*>(dst), n, seed, mean,
                                                     scale);
      break;
    default:
      QWEN3MOE_FAIL("fill_random: dtype ", dtype_name(dtype),
                    " is not supported (BF16, F32 and F8_E4M3 are)");
  }
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
