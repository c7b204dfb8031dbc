// The CPU kernels: free functions on host memory, threaded with OpenMP over the cores and
// vectorised for AVX2. They are the reference every other backend is tested against, so each
// is written to be obviously right first and fast second.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace qwen3moe::cpu {

// Which algorithm matmul uses for a given number of rows m (see matmul.cpp for the measured
// crossover): the own AVX2 kernel (weights converted in registers) or OpenBLAS sgemm over
// f32-converted weight panels.
enum class GemmPath { kOwn, kBlas };
GemmPath gemm_path(int64_t m);
void matmul_own(float* y, const float* x, const Weight& w, int64_t m, const float* bias);
void matmul_blas(float* y, const float* x, const Weight& w, int64_t m, const float* bias);

void matmul(float* y, const float* x, const Weight& w, int64_t m, const float* bias);
// For each group g: y[off[g]:off[g+1]] = x[off[g]:off[g+1]] · w[g]^T (host offsets): what
// moe_matmul runs on the CPU.
void grouped_matmul(float* y, const float* x, const Weight* w, const int64_t* offsets,
                    int num_groups);
void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps);
void rope(float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
          const float* inv_freq, float scale);
void kv_cache_write(const KvCacheView& cache, const float* k, const float* v, const int32_t* slots,
                    int64_t tokens, int64_t kv_dim, int64_t head_dim);
void attention(float* out, const float* q, const KvCacheView& cache, const AttentionBatch& batch,
               int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale);
void silu_mul(float* out, const float* gate, const float* up, int64_t rows, int64_t dim);
void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens, int64_t experts,
                 int64_t k, bool normalize);
void embedding(float* out, const Weight& table, const int32_t* ids, int64_t tokens,
               int64_t row_offset);
void gather_rows(float* out, const float* in, const int32_t* idx, int64_t n, int64_t dim);
void rows_to_bf16(uint16_t* out, const float* in, const int32_t* idx, int64_t n, int64_t dim);
void rows_to_f32(float* out, const uint16_t* in, int64_t n, int64_t dim);
void add(float* y, const float* x, int64_t n);
void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index, int32_t* active,
               const int32_t* ids, int64_t tokens, int64_t k, int64_t experts);
void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens);
void moe_swiglu(float* act, float* gate_out, float* up_out, const float* x,
                const ExpertWeights& gate, const ExpertWeights& up, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens);
void moe_combine(float* out, const float* in, const int32_t* pair_index, const float* weights,
                 int64_t tokens, int64_t k, int64_t dim, bool accumulate = true);
void moe_dispatch_count(int32_t* stats, const int32_t* ids, const int32_t* owner, int64_t tokens,
                        int64_t k, int64_t experts, int64_t world);
void moe_dispatch_pack(const MoeDispatchPack& args);
void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean, float std);

// One row of a weight converted to f32 (any stored dtype).
void weight_row_to_f32(float* out, const Weight& w, int64_t row);

}  // namespace qwen3moe::cpu
