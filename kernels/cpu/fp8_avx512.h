// The fp8 register kernel's AVX-512 twin (fp8_avx512.cpp): where the CPU has AVX-512 (F and
// BW), the block-scaled e4m3 tiles of matmul.cpp run 32 columns a step in 512-bit registers,
// which halves the widening's instructions per weight, the bound of the AVX2 kernel on two
// cores. Compiled for AVX-512 function by function (a target attribute), never the whole file,
// so no inline function of a shared header is emitted with instructions other CPUs lack.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace qwen3moe::cpu {

// Whether fp8 tiles take the AVX-512 kernel: the CPU has it and set_fp8_avx512 left it on.
bool fp8_avx512_enabled();
// on = false: the AVX2 kernel everywhere (tests compare the two); true: AVX-512 where the CPU
// has it (the default).
void set_fp8_avx512(bool on);

// One MR x NR tile of y (MR 1..4, NR 1..4): rows [0, MR) of x (row stride ldx) against fp8
// weight rows [n0, n0 + NR) over all K columns, + bias, into y (row stride ldy); the contract
// of matmul.cpp's tile<F8E4M3, MR, NR>.
void fp8_tile_avx512(int mr, int nr, float* y, int64_t ldy, const float* x, int64_t ldx,
                     const Weight& w, int64_t n0, int64_t K, const float* bias);

}  // namespace qwen3moe::cpu
