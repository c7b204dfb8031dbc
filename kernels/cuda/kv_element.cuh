// One element of a KV cache (KvCacheView) on the device: read as f32, written from f32, in the
// cache's dtype. The same values as the CPU's kv_cache_write and attention read (bf16 and e4m3
// rounded to nearest even, e4m3 saturating at 448 and divided by its head's scale).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "kernels/common/dtype.h"

namespace qwen3moe::cuda {

__device__ inline float kv_load(const void* base, DType dtype, int64_t i, float scale) {
  if (dtype == DType::BF16)
    return __uint_as_float(uint32_t(static_cast<const uint16_t*>(base)[i]) << 16);
  if (dtype == DType::F8E4M3) {
    // fp8_e4m3_to_f32's bits: 2^-120 times the value; the factor restores it.
    const uint32_t b = static_cast<const uint8_t*>(base)[i];
    if ((b & 0x7Fu) == 0x7Fu) return __int_as_float(0x7fc00000);
    return __uint_as_float(((b & 0x80u) << 24) | ((b & 0x7Fu) << 20)) * 0x1p120f * scale;
  }
  return static_cast<const float*>(base)[i];
}

__device__ inline void kv_store(void* base, DType dtype, int64_t i, float v, float scale) {
  if (dtype == DType::BF16) {
    static_cast<uint16_t*>(base)[i] = __bfloat16_as_ushort(__float2bfloat16_rn(v));
  } else if (dtype == DType::F8E4M3) {
    static_cast<uint8_t*>(base)[i] =
        uint8_t(__nv_cvt_float_to_fp8(v / scale, __NV_SATFINITE, __NV_E4M3));
  } else {
    static_cast<float*>(base)[i] = v;
  }
}

}  // namespace qwen3moe::cuda
