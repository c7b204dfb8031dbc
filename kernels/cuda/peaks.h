// What this GPU can do, measured rather than assumed (the bench prints its figures as shares of
// these). A plain header, no CUDA includes, so the launcher can call it.
#pragma once

#include <cstddef>
#include <string>

namespace qwen3moe::cuda {

// GB/s of a device-to-device cudaMemcpy of `bytes`, counting bytes read plus bytes written,
// timed with events, median of `reps` after a warm-up copy. Memory is freed before returning.
double measure_copy_bandwidth(size_t bytes = size_t(1) << 30, int reps = 10);
// TFLOP/s of one n x n x n cublasGemmEx, bf16 inputs (random, not zeros), f32 output and f32
// compute: the tensor-core ceiling our split-bf16 GEMMs run against. Median of `reps`.
double measure_bf16_gemm_peak(int n = 8192, int reps = 10);
// The current device's name ("NVIDIA H100 80GB HBM3").
std::string device_name();

}  // namespace qwen3moe::cuda
