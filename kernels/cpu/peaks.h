// What this machine can do, measured rather than assumed: streaming-read memory bandwidth and
// the f32 FMA throughput of all threads. The bench prints its figures as a share of these.
#pragma once

#include <cstddef>

namespace qwen3moe::cpu {

// GB/s of a read of `bytes` (far larger than the caches), best of `reps`, all OpenMP threads.
double measure_read_bandwidth(size_t bytes = size_t(1) << 30, int reps = 3);
// GFLOP/s of independent AVX2 FMA chains on every OpenMP thread (2 flops per lane per FMA).
double measure_fma_peak();

}  // namespace qwen3moe::cpu
