// The device-resident MoE ops on the CPU: the references the CUDA kernels are tested against,
// and what the CPU backend runs (so one Model code path serves both). moe_matmul reuses the
// grouped GEMM of matmul.cpp, so the CPU pays nothing for the device-shaped interface.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/common/check.h"
#include "kernels/cpu/ops.h"
#include "kernels/common/random_hash.h"

namespace qwen3moe::cpu {

void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index, int32_t* active,
               const int32_t* ids, int64_t tokens, int64_t k, int64_t experts) {
  // Counting sort by expert, stable in token order: pairs visited token-major land in
  // ascending token order inside each expert.
  std::vector<int32_t> next(static_cast<size_t>(experts + 1), 0);
  for (int64_t i = 0; i < tokens * k; ++i)
    if (ids[i] >= 0 && ids[i] < experts) ++next[size_t(ids[i]) + 1];
  for (int64_t e = 0; e < experts; ++e) next[size_t(e + 1)] += next[size_t(e)];
  std::memcpy(offsets, next.data(), sizeof(int32_t) * size_t(experts + 1));
  int64_t n_active = 0;
  for (int64_t e = 0; e < experts; ++e)
    if (offsets[e + 1] > offsets[e]) active[n_active++] = int32_t(e);
  for (int64_t e = n_active; e < experts; ++e) active[e] = -1;
  for (int64_t i = 0; i < tokens * k; ++i) {
    pair_index[i] = -1;
    if (ids[i] < 0 || ids[i] >= experts) continue;
    const int32_t pos = next[size_t(ids[i])]++;
    pair_token[pos] = int32_t(i / k);
    pair_index[i] = pos;
  }
  // Slots past the last pair (ids out of range) name token 0, so a gather over all T*k rows
  // reads valid memory.
  for (int64_t p = offsets[experts]; p < tokens * k; ++p) pair_token[p] = 0;
}

void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) {
  (void)active;
  (void)rows;
  (void)tokens;
  std::vector<Weight> ws(static_cast<size_t>(experts));
  std::vector<int64_t> off(static_cast<size_t>(experts + 1));
  for (int64_t e = 0; e < experts; ++e)
    ws[size_t(e)] = Weight{w.table[e], w.dtype, w.rows, w.cols, w.cols};
  for (int64_t e = 0; e <= experts; ++e) off[size_t(e)] = offsets[e];
  grouped_matmul(y, x, ws.data(), off.data(), int(experts));
}

void moe_swiglu(float* act, float* gate_out, float* up_out, const float* x,
                const ExpertWeights& gate, const ExpertWeights& up, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) {
  moe_matmul(gate_out, x, gate, offsets, active, experts, rows, tokens);
  moe_matmul(up_out, x, up, offsets, active, experts, rows, tokens);
  silu_mul(act, gate_out, up_out, offsets[experts], gate.rows);
}

void moe_combine(float* out, const float* in, const int32_t* pair_index, const float* weights,
                 int64_t tokens, int64_t k, int64_t dim) {
#pragma omp parallel for schedule(static) if (tokens * k * dim > 65536)
  for (int64_t t = 0; t < tokens; ++t) {
    float* o = out + t * dim;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t p = pair_index[t * k + j];
      if (p < 0) continue;
      const float s = weights[t * k + j];
      const float* r = in + int64_t(p) * dim;
      for (int64_t d = 0; d < dim; ++d) o[d] += s * r[d];
    }
  }
}

void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean, float std) {
  QWEN3MOE_CHECK(dtype == DType::BF16 || dtype == DType::F32, "fill_random: dtype ",
                 dtype_name(dtype), " is not supported (BF16 and F32 are)");
  const float scale = std * 1.7320508f;  // sqrt(3): a uniform on [-1, 1) has std 1/sqrt(3)
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    // One fused multiply-add, one rounding, as the CUDA twin's __fmaf_rn: written as
    // mean + scale * u, GCC contracts it into an FMA (-mfma, even with -std=c++20) or not
    // (no FMA unit), and nvcc likewise, so neither side may leave the choice to the compiler.
    const float v = std::fma(scale, random_unit(seed, i), mean);
    if (dtype == DType::BF16)
      static_cast<uint16_t*>(dst)[i] = f32_to_bf16(v);
    else
      static_cast<float*>(dst)[i] = v;
  }
}

}  // namespace qwen3moe::cpu
