// The hash behind Backend::fill_random, shared by the CPU twin and the CUDA kernel so both
// produce the same bits: splitmix64 of (seed, index), the top 24 bits as a uniform in [0, 1)
// (exact in f32), mapped to mean + std * sqrt(3) * (2u - 1), which has the given mean and std.
// The uniform is exact and the map one explicit fused multiply-add (std::fma on the CPU,
// __fmaf_rn on CUDA), so no compiler's FMA contraction (or its absence) changes a bit.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define QWEN3MOE_HD __host__ __device__
#else
#define QWEN3MOE_HD
#endif

namespace qwen3moe {

QWEN3MOE_HD inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [-1, 1) with 24 random bits: exact in f32, no rounding anywhere.
QWEN3MOE_HD inline float random_unit(uint64_t seed, int64_t i) {
  const uint64_t h = splitmix64(splitmix64(seed) ^ uint64_t(i));
  return float(int32_t(h >> 40) - (1 << 23)) * (1.0f / float(1 << 23));
}

}  // namespace qwen3moe
