// Block-scaled e4m3 weights on the device (the checkpoints' F8_E4M3 + weight_scale_inv, one
// byte a weight in memory): widening in registers and the block scale of a weight. The values
// are those of the CPU twin (kernels/cpu/matmul.cpp): e4m3 -> f16 -> f32 is exact, and the one
// rounding is the product with the block's scale.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace qwen3moe::cuda {

// Where the block scales of a weight matrix (or of each expert's) are, as a kernel reads them:
// element (r, c) of the matrix has scale[((r + row0) / block_rows) * ld + (c + col0) /
// block_cols] (Weight::scale_at). `table` [E] for experts (row0 = col0 = 0), else `single`.
struct Fp8Scales {
  const float* const* table = nullptr;
  const float* single = nullptr;
  int block_rows = 0, block_cols = 0, ld = 0, row0 = 0, col0 = 0;
  __device__ const float* of(int expert) const { return table ? table[expert] : single; }
  // The first scale of weight row r (add the column block).
  __device__ int row_base(int r) const { return (r + row0) / block_rows * ld; }
  __device__ int col_block(int c) const { return (c + col0) / block_cols; }
};

// Two e4m3 codes (the low byte first) as two exact f32.
__device__ __forceinline__ float2 fp8x2_to_float2(uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(two), __NV_E4M3);
  return __half22float2(__half2(h));
}

// 8 e4m3 codes (a uint2, the lowest byte the first column) times `scale`, one rounding each.
__device__ __forceinline__ void fp8x8_scaled(uint2 w, float scale, float out[8]) {
  const uint32_t words[2] = {w.x, w.y};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float2 a = fp8x2_to_float2(words[i] & 0xffffu), b = fp8x2_to_float2(words[i] >> 16);
    out[4 * i + 0] = a.x * scale;
    out[4 * i + 1] = a.y * scale;
    out[4 * i + 2] = b.x * scale;
    out[4 * i + 3] = b.y * scale;
  }
}

// 16 e4m3 codes (a uint4) as 16 bf16 of the same value (exact: e4m3 needs 4 exponent and 3
// mantissa bits, bf16 has 8 and 7), packed two a word as in memory: a tensor-core tile of the
// unscaled weights, its block scale applied to the product.
__device__ __forceinline__ void fp8x16_to_bf16(uint4 w, uint4& lo, uint4& hi) {
  const uint32_t in[4] = {w.x, w.y, w.z, w.w};
  uint32_t out[8];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const float2 f = fp8x2_to_float2((in[i] >> (16 * j)) & 0xffffu);
      const __nv_bfloat162 b = __floats2bfloat162_rn(f.x, f.y);  // exact: no rounding happens
      out[2 * i + j] = *reinterpret_cast<const uint32_t*>(&b);
    }
  }
  lo = make_uint4(out[0], out[1], out[2], out[3]);
  hi = make_uint4(out[4], out[5], out[6], out[7]);
}

// One e4m3 code's exact value.
__device__ __forceinline__ float fp8_value(uint8_t code) {
  return fp8x2_to_float2(code).x;
}

}  // namespace qwen3moe::cuda
