// The MoE experts' grouped GEMMs on the CPU, twin of kernels/cuda/moe_matmul.cu and its
// reference. moe_matmul reuses the grouped GEMM of matmul.cpp, so the CPU pays nothing for the
// device-shaped interface (offsets and the active list are what the CUDA kernels need).
#include <vector>

#include "kernels/cpu/ops.h"

namespace qwen3moe::cpu {

void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) {
  (void)active;
  (void)rows;
  (void)tokens;
  std::vector<Weight> ws(static_cast<size_t>(experts));
  std::vector<int64_t> off(static_cast<size_t>(experts + 1));
  for (int64_t e = 0; e < experts; ++e) {
    Weight& we = ws[size_t(e)];
    we = Weight{w.table[e], w.dtype, w.rows, w.cols, w.cols};
    if (w.scales) {
      we.scale = w.scales[e];
      we.block_rows = w.block_rows;
      we.block_cols = w.block_cols;
      we.scale_ld = (w.cols + w.block_cols - 1) / w.block_cols;
    }
  }
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

}  // namespace qwen3moe::cpu
