// The CUDA kernels: free functions on device memory, each on an explicit stream, each the twin
// of the kernels/cpu function of the same name (tests/gpu compares them). Written without a
// GPU at hand: scripts/gpu-check.sh is what proves them.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/backend.h"

namespace qwen3moe::cuda {

// Scratch the GEMM needs: the split activations and the two-half product. Grown by the
// backend before a step, never during one.
struct GemmWorkspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};
size_t matmul_workspace_bytes(int64_t m, int64_t n, int64_t k);

// y[M,N] = x[M,K] · w[N,K]^T (+ bias). w is bf16, f32 or block-scaled fp8 on the device (ld =
// cols). x is f32: for bf16 it is split into hi + lo bf16 halves (x = hi + lo to 16 bits of
// mantissa) and both go through one tensor-core GEMM as 2M rows with f32 accumulation, so the
// result keeps f32-activation accuracy while the weights are read once. fp8 takes fp8_matmul.
void matmul(float* y, const float* x, const Weight& w, int64_t m, const float* bias,
            const GemmWorkspace& ws, cublasHandle_t blas, cudaStream_t stream);
void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps,
             cudaStream_t stream);
void rope(float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
          const float* inv_freq, float scale, cudaStream_t stream);
void kv_cache_write(const KvCacheView& cache, const float* k, const float* v, const int32_t* slots,
                    int64_t tokens, int64_t kv_dim, int64_t head_dim, cudaStream_t stream);
void attention(float* out, const float* q, const KvCacheView& cache, const AttentionBatch& batch,
               int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale,
               cudaStream_t stream);
void silu_mul(float* out, const float* gate, const float* up, int64_t rows, int64_t dim,
              cudaStream_t stream);
void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens, int64_t experts,
                 int64_t k, bool normalize, cudaStream_t stream);
void embedding(float* out, const Weight& table, const int32_t* ids, int64_t tokens,
               int64_t row_offset, cudaStream_t stream);
void gather_rows(float* out, const float* in, const int32_t* idx, int64_t n, int64_t dim,
                 cudaStream_t stream);
void rows_to_bf16(uint16_t* out, const float* in, const int32_t* idx, int64_t n, int64_t dim,
                  cudaStream_t stream);
void rows_to_f32(float* out, const uint16_t* in, int64_t n, int64_t dim, cudaStream_t stream);
void add(float* y, const float* x, int64_t n, cudaStream_t stream);

// The memory-bound GEMV-like kernel of moe_matmul.cu for a dense matmul of few rows: bf16 or
// fp8 weights streamed once, f32 FMA (f32-activation accuracy without the split). matmul uses
// it when gemv_applies (decode).
constexpr int64_t kGemvMaxRows = 8;
bool gemv_applies(const Weight& w, int64_t m);
void gemv(float* y, const float* x, const Weight& w, int64_t m, const float* bias,
          cudaStream_t stream);
// y[M,N] = x[M,K] · w[N,K]^T for block-scaled fp8 w (ld = cols) at any M, no bias: moe_matmul's
// wmma kernel over one matrix (the codes widened exactly to bf16 tiles, each 128-column block's
// product scaled, split-bf16 x), or its plain kernel where the blocks do not fit wmma's steps.
void fp8_matmul(float* y, const float* x, const Weight& w, int64_t m, cudaStream_t stream);

// moe_align over device memory; tokens > 64 need moe_align_workspace_bytes of scratch.
size_t moe_align_workspace_bytes(int64_t tokens, int64_t experts);
void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index, int32_t* active,
               const int32_t* ids, int64_t tokens, int64_t k, int64_t experts, void* workspace,
               cudaStream_t stream);
// The experts' grouped GEMM in one launch (moe_matmul.cu says which kernel when). tokens
// bounds the rows any one expert can have (top-k ids of a token are distinct).
enum class MoeMatmulPath { kGemv, kWmma, kPlain };
constexpr int64_t kWmmaMinRowsPerExpert = 16;
MoeMatmulPath moe_matmul_path(const ExpertWeights& w, int64_t experts, int64_t rows);
void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens,
                cudaStream_t stream);
// act = silu(x · gate^T) * (x · up^T) per expert: one launch on the gemv path (gate_out and
// up_out unused), else two moe_matmul launches into them and silu_mul.
void moe_swiglu(float* act, float* gate_out, float* up_out, const float* x,
                const ExpertWeights& gate, const ExpertWeights& up, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens,
                cudaStream_t stream);
void moe_combine(float* out, const float* in, const int32_t* pair_index, const float* weights,
                 int64_t tokens, int64_t k, int64_t dim, bool accumulate, cudaStream_t stream);
void moe_dispatch_count(int32_t* stats, const int32_t* ids, const int32_t* owner, int64_t tokens,
                        int64_t k, int64_t experts, int64_t world, cudaStream_t stream);
void moe_dispatch_pack(const MoeDispatchPack& args, cudaStream_t stream);
void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean, float std,
                 cudaStream_t stream);

}  // namespace qwen3moe::cuda
