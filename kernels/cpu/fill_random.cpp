// Random weights on the CPU, twin of kernels/cuda/fill_random.cu: the hash of
// kernels/common/random_hash.h per element, so both backends write the same bits.
#include <cmath>

#include "kernels/common/check.h"
#include "kernels/common/random_hash.h"
#include "kernels/cpu/ops.h"

namespace qwen3moe::cpu {

void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean, float std) {
  QWEN3MOE_CHECK(dtype == DType::BF16 || dtype == DType::F32 || dtype == DType::F8E4M3,
                 "fill_random: dtype ", dtype_name(dtype),
                 " is not supported (BF16, F32 and F8_E4M3 are)");
  const float scale = std * 1.7320508f;  // sqrt(3): a uniform on [-1, 1) has std 1/sqrt(3)
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    // One fused multiply-add, one rounding, as the CUDA twin's __fmaf_rn: written as
    // mean + scale * u, GCC contracts it into an FMA (-mfma, even with -std=c++20) or not
    // (no FMA unit), and nvcc likewise, so neither side may leave the choice to the compiler.
    const float v = std::fma(scale, random_unit(seed, i), mean);
    if (dtype == DType::BF16)
      static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v);
    else if (dtype == DType::F8E4M3)  // nearest even, saturating (the codes of a random fp8 matrix)
      static_cast<uint8_t*>(dst)[i] = f32_to_fp8_e4m3(v);
    else
      static_cast<float*>(dst)[i] = v;
  }
}

}  // namespace qwen3moe::cpu
