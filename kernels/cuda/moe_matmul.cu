// The grouped GEMM of the MoE experts: y[rows of e] = x[rows of e] · w[e]^T for every expert e
// in ONE launch, with the expert offsets in device memory (moe_align's), so nothing waits for
// the host and a decode step can be captured as a graph.
//
// Two kernels, chosen on the host from the average rows per expert:
// - gemv (decode, a few rows per expert): memory bound, so the point is to stream every
//   active expert's weights exactly once at full bandwidth. One block owns R weight
//   rows and reads them with 16-byte loads across its threads; every row of x the expert owns
//   (up to MT at a time, from L1) is multiplied against the weights in registers, in f32 FMA,
//   so the result has f32-activation accuracy with no split. The grid's y dimension walks the
//   active experts only (moe_align's list), so the 120 idle experts of a batch-1 step cost no
//   blocks. The dense matmul uses the same kernel for m <= 8 (one "expert", rows [0, m)).
// - wmma (prefill, tens of rows or more per expert): bf16 tensor cores, 64x64 output tiles,
//   the f32 activations split into hi + lo bf16 halves (as matmul.cu does with cuBLAS), both
//   multiplied against the same weight fragment, f32 accumulation. Each block finds its
//   (expert, row tile) from the offsets with one warp scan, so the grid is sized on the host
//   by an upper bound (rows / 64 + experts tiles) and surplus blocks exit.
// Block-scaled fp8 weights (e4m3, one byte each in memory) take both kernels too: gemv widens
// 16 codes per 16-byte load in registers and multiplies each by its block's scale (one rounding,
// as the CPU twin); wmma widens the codes exactly to bf16 tiles and applies the scale to each
// 128-column block's partial product, so its accuracy is that of the bf16 path.
// Other weight dtypes, K not a multiple of 8 (16 for fp8), or fp8 blocks that do not fall on
// wmma's 32-column steps take a plain one-thread-per-output kernel.
#include <cuda_bf16.h>
#include <mma.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/fp8.cuh"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kGemvThreads = 128;
constexpr unsigned kFull = 0xffffffffu;

// Rows [r0, r1) of x that this block's expert owns, and its weights; false: no expert here.
struct Group {
  int64_t r0, r1;
  const void* w;
  int e;
};

__device__ bool find_group(Group* g, const void* const* table, const void* single,
                           const int32_t* offsets, const int32_t* active, int64_t rows_single,
                           int slot) {
  if (active == nullptr) {
    g->r0 = 0;
    g->r1 = rows_single;
    g->w = single;
    g->e = 0;
    return true;
  }
  const int e = active[slot];
  if (e < 0) return false;
  g->r0 = offsets[e];
  g->r1 = offsets[e + 1];
  g->w = table[e];
  g->e = e;
  return true;
}

// 8 bf16 (one 16-byte load) times 8 f32 of x.
__device__ __forceinline__ float dot8(const uint4 w, const float4 a, const float4 b, float acc) {
  acc = fmaf(__uint_as_float(w.x << 16), a.x, acc);
  acc = fmaf(__uint_as_float(w.x & 0xffff0000u), a.y, acc);
  acc = fmaf(__uint_as_float(w.y << 16), a.z, acc);
  acc = fmaf(__uint_as_float(w.y & 0xffff0000u), a.w, acc);
  acc = fmaf(__uint_as_float(w.z << 16), b.x, acc);
  acc = fmaf(__uint_as_float(w.z & 0xffff0000u), b.y, acc);
  acc = fmaf(__uint_as_float(w.w << 16), b.z, acc);
  acc = fmaf(__uint_as_float(w.w & 0xffff0000u), b.w, acc);
  return acc;
}

// 8 widened weights times 8 f32 of x.
__device__ __forceinline__ float dot8f(const float w[8], const float4 a, const float4 b,
                                       float acc) {
  acc = fmaf(w[0], a.x, acc);
  acc = fmaf(w[1], a.y, acc);
  acc = fmaf(w[2], a.z, acc);
  acc = fmaf(w[3], a.w, acc);
  acc = fmaf(w[4], b.x, acc);
  acc = fmaf(w[5], b.y, acc);
  acc = fmaf(w[6], b.z, acc);
  acc = fmaf(w[7], b.w, acc);
  return acc;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int d = 16; d > 0; d /= 2) v += __shfl_xor_sync(kFull, v, d);
  return v;
}

// grid (ceil(N / R), slots); K % 8 == 0, rows 16-byte aligned. The block's 128 threads split
// K between them (16-byte groups t, t+128, ... of each of its R weight rows), so even a
// 512-row projection (k_proj) makes 128 blocks at R = 4 with whole rows in flight; the partial
// sums meet through warp shuffles and one shared-memory step. Every block reads its expert's
// rows of x (from L2) once: x traffic is 2 * rows / R times the weight bytes, so more rows
// per expert (MT >= 4) take R = 8.
// kGlu (the experts' gate and up at once): the block streams R rows of table (gate) and the
// same R rows of table2 (up), and writes silu(gate) * up: one launch, no gate/up round trip.
// kFp8: the rows are e4m3 codes (K % 16 == 0), 16 columns a load, each half of 8 widened and
// scaled once (sc: gate's or the matrix's scales, sc2: up's) and then used for every row of x.
template <int MT, int R, bool kGlu, bool kFp8>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(float* y, const float* x, const void* const* table, const void* const* table2,
                const void* single, const int32_t* offsets, const int32_t* active,
                int64_t rows_single, int N, int K, const float* bias, Fp8Scales sc, Fp8Scales sc2) {
  constexpr int RR = kGlu ? 2 * R : R;  // weight rows streamed
  constexpr int kCols = kFp8 ? 16 : 8;  // weights per 16-byte load
  Group g;
  if (!find_group(&g, table, single, offsets, active, rows_single, blockIdx.y)) return;
  __shared__ float red[kGemvThreads / 32][RR][MT];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int n0 = blockIdx.x * R;
  const void* w2 = kGlu ? table2[g.e] : nullptr;
  // Rows past N read row N-1 again (never stored): no branch in the streaming loop.
  const uint4* wr[RR];
  [[maybe_unused]] const float* srow[RR];  // fp8: the first scale of each row
#pragma unroll
  for (int r = 0; r < RR; ++r) {
    const int row = min(n0 + r % R, N - 1);
    wr[r] = reinterpret_cast<const uint4*>(static_cast<const char*>(r < R ? g.w : w2) +
                                           int64_t(row) * K * (kFp8 ? 1 : 2));
    if constexpr (kFp8) srow[r] = (r < R ? sc.of(g.e) : sc2.of(g.e)) + sc.row_base(row);
  }
  const int groups = K / kCols;  // 16-byte groups per row
  for (int64_t m0 = g.r0; m0 < g.r1; m0 += MT) {
    const int mc = int(min(int64_t(MT), g.r1 - m0));
    float acc[RR][MT];
#pragma unroll
    for (int r = 0; r < RR; ++r)
#pragma unroll
      for (int m = 0; m < MT; ++m) acc[r][m] = 0.0f;
    const float4* xr = reinterpret_cast<const float4*>(x + m0 * K);
#pragma unroll 2
    for (int q = threadIdx.x; q < groups; q += kGemvThreads) {
      uint4 wv[RR];
#pragma unroll
      for (int r = 0; r < RR; ++r) wv[r] = __ldg(wr[r] + q);
      if constexpr (kFp8) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {  // columns 16q + 8h ..: one block (blocks are 8k wide)
          const int cb = sc.col_block(16 * q + 8 * h);
          float wf[RR][8];
#pragma unroll
          for (int r = 0; r < RR; ++r)
            fp8x8_scaled(h ? make_uint2(wv[r].z, wv[r].w) : make_uint2(wv[r].x, wv[r].y),
                         __ldg(srow[r] + cb), wf[r]);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            if (m < mc) {
              const float4 a = __ldg(xr + int64_t(m) * (K / 4) + 4 * q + 2 * h);
              const float4 b = __ldg(xr + int64_t(m) * (K / 4) + 4 * q + 2 * h + 1);
#pragma unroll
              for (int r = 0; r < RR; ++r) acc[r][m] = dot8f(wf[r], a, b, acc[r][m]);
            }
          }
        }
      } else {
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if (m < mc) {
            const float4 a = __ldg(xr + int64_t(m) * (K / 4) + 2 * q);
            const float4 b = __ldg(xr + int64_t(m) * (K / 4) + 2 * q + 1);
#pragma unroll
            for (int r = 0; r < RR; ++r) acc[r][m] = dot8(wv[r], a, b, acc[r][m]);
          }
        }
      }
    }
#pragma unroll
    for (int r = 0; r < RR; ++r)
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const float v = warp_sum(acc[r][m]);
        if (lane == 0) red[warp][r][m] = v;
      }
    __syncthreads();
    // Rows past N (the clamped re-reads of row N-1) and past the chunk store nothing and
    // read no bias: bias has N entries.
    if (threadIdx.x < R * MT && threadIdx.x % MT < mc && n0 + int(threadIdx.x) / MT < N) {
      const int r = threadIdx.x / MT, m = threadIdx.x % MT;
      float v = 0.0f;
#pragma unroll
      for (int w = 0; w < kGemvThreads / 32; ++w) v += red[w][r][m];
      if constexpr (kGlu) {
        float u = 0.0f;
#pragma unroll
        for (int w = 0; w < kGemvThreads / 32; ++w) u += red[w][R + r][m];
        v = v / (1.0f + expf(-v)) * u;  // silu_mul's formula
      } else if (bias) {
        v += bias[n0 + r];
      }
      y[(m0 + m) * N + n0 + r] = v;
    }
    __syncthreads();  // red is reused by the next chunk of rows
  }
}

// ---- tensor-core path --------------------------------------------------------------------
constexpr int kBM = 64, kBN = 64, kBK = 32, kPad = 8;
constexpr int kWmmaThreads = 128;  // 4 warps, 2 x 2, each 32 x 32 of the tile

// One warp finds which expert's row tile `tile` is: experts' tile counts scanned 32 at a time.
__device__ void find_tile(int tile, const int32_t* offsets, int64_t experts, int* s_e,
                          int64_t* s_m0, int64_t* s_m1) {
  const int lane = threadIdx.x % 32;
  int base = 0;
  for (int64_t e0 = 0; e0 < experts; e0 += 32) {
    const int64_t e = e0 + lane;
    int tiles = 0, o0 = 0, o1 = 0;
    if (e < experts) {
      o0 = offsets[e];
      o1 = offsets[e + 1];
      tiles = (o1 - o0 + kBM - 1) / kBM;
    }
    int incl = tiles;
    for (int d = 1; d < 32; d *= 2) {
      const int v = __shfl_up_sync(kFull, incl, d);
      if (lane >= d) incl += v;
    }
    const int excl = incl - tiles;
    const bool mine = tile >= base + excl && tile < base + incl;
    if (mine) {
      *s_e = int(e);
      *s_m0 = o0 + int64_t(tile - base - excl) * kBM;
      *s_m1 = min(*s_m0 + kBM, int64_t(o1));
    }
    if (__ballot_sync(kFull, mine)) return;
    base += __shfl_sync(kFull, incl, 31);
  }
  if (lane == 0) *s_e = -1;
}

// grid (ceil(N / kBN), tile upper bound); K % 8 == 0. offsets null: one matrix `single` of
// rows_single rows (a dense fp8 projection), row tile blockIdx.y.
// kFp8: K % 16 == 0 and every block boundary on a kBK step (wmma_fits_fp8). The tile holds
// the codes widened exactly; at the end of each block the product goes through shared memory,
// scaled per weight row (this thread's column of it) into f32 sums the thread keeps.
template <bool kFp8>
__global__ void __launch_bounds__(kWmmaThreads)
    wmma_kernel(float* y, const float* x, const void* const* table, const void* single,
                int64_t rows_single, const int32_t* offsets, int64_t experts, int N, int K,
                Fp8Scales sc) {
  using namespace nvcuda;
  __shared__ __align__(32) __nv_bfloat16 a_hi[kBM][kBK + kPad];
  __shared__ __align__(32) __nv_bfloat16 a_lo[kBM][kBK + kPad];
  __shared__ __align__(32) __nv_bfloat16 b_s[kBN][kBK + kPad];
  __shared__ __align__(32) float c_s[kBM][kBN + 4];
  __shared__ int s_e;
  __shared__ int64_t s_m0, s_m1;
  if (offsets == nullptr) {
    if (threadIdx.x == 0) {
      s_e = 0;
      s_m0 = int64_t(blockIdx.y) * kBM;
      s_m1 = min(s_m0 + kBM, rows_single);
    }
  } else if (threadIdx.x < 32) {
    find_tile(blockIdx.y, offsets, experts, &s_e, &s_m0, &s_m1);
  }
  __syncthreads();
  if (s_e < 0 || s_m0 >= s_m1) return;
  const int64_t m0 = s_m0, m1 = s_m1;
  const int n0 = blockIdx.x * kBN;
  const void* wbase = offsets ? table[s_e] : single;
  const auto* w = static_cast<const __nv_bfloat16*>(wbase);
  const auto* w8 = static_cast<const uint8_t*>(wbase);
  const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;
  // fp8: this thread sums column `col` of the tile, rows threadIdx.x / kBN + 2i.
  constexpr int kSums = kFp8 ? kBM * kBN / kWmmaThreads : 1;
  [[maybe_unused]] float sums[kSums] = {};
  const int col = threadIdx.x % kBN;
  [[maybe_unused]] const float* col_scales =
      kFp8 && n0 + col < N ? sc.of(s_e) + sc.row_base(n0 + col) : nullptr;
  [[maybe_unused]] int next_block = kFp8 ? sc.block_cols - sc.col0 % sc.block_cols : 0;

  // Per K step every thread moves 16 floats of x (4 x float4) and 16 weights of w (bf16: 2 x
  // uint4; fp8: one uint4 of codes).
  float4 xa[4];
  uint4 wb[2];
  auto load = [&](int k0) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int idx = threadIdx.x + i * kWmmaThreads;  // 0..511: row idx / 8, float4 idx % 8
      const int r = idx / 8, c = (idx % 8) * 4;
      const int64_t row = m0 + r;
      xa[i] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (row < m1 && k0 + c < K) {
        const float* p = x + row * K + k0 + c;
        if (k0 + c + 4 <= K) {
          xa[i] = *reinterpret_cast<const float4*>(p);
        } else {
          xa[i].x = p[0];
          if (k0 + c + 1 < K) xa[i].y = p[1];
          if (k0 + c + 2 < K) xa[i].z = p[2];
        }
      }
    }
    if constexpr (kFp8) {
      const int r = threadIdx.x / 2, c = (threadIdx.x % 2) * 16;  // 16 codes of row r
      wb[0] = make_uint4(0, 0, 0, 0);
      if (n0 + r < N && k0 + c < K)  // K % 16 == 0: a group of 16 is all in or all out
        wb[0] = *reinterpret_cast<const uint4*>(w8 + int64_t(n0 + r) * K + k0 + c);
    } else {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int idx = threadIdx.x + i * kWmmaThreads;  // 0..255: row idx / 4, 8 bf16 idx % 4
        const int r = idx / 4, c = (idx % 4) * 8;
        wb[i] = make_uint4(0, 0, 0, 0);
        if (n0 + r < N && k0 + c < K)  // K % 8 == 0: a group of 8 is all in or all out
          wb[i] = *reinterpret_cast<const uint4*>(w + int64_t(n0 + r) * K + k0 + c);
      }
    }
  };
  auto store = [&] {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int idx = threadIdx.x + i * kWmmaThreads;
      const int r = idx / 8, c = (idx % 8) * 4;
      const float v[4] = {xa[i].x, xa[i].y, xa[i].z, xa[i].w};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const __nv_bfloat16 hi = __float2bfloat16_rn(v[j]);
        a_hi[r][c + j] = hi;
        a_lo[r][c + j] = __float2bfloat16_rn(v[j] - __bfloat162float(hi));
      }
    }
    if constexpr (kFp8) {
      const int r = threadIdx.x / 2, c = (threadIdx.x % 2) * 16;
      uint4 lo, hi;
      fp8x16_to_bf16(wb[0], lo, hi);
      *reinterpret_cast<uint4*>(&b_s[r][c]) = lo;
      *reinterpret_cast<uint4*>(&b_s[r][c + 8]) = hi;
    } else {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int idx = threadIdx.x + i * kWmmaThreads;
        const int r = idx / 4, c = (idx % 4) * 8;
        *reinterpret_cast<uint4*>(&b_s[r][c]) = wb[i];
      }
    }
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  load(0);
  for (int k0 = 0; k0 < K; k0 += kBK) {
    store();
    __syncthreads();
    if (k0 + kBK < K) load(k0 + kBK);  // the next step's loads fly during this step's math
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ah[2], al[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(ah[i], &a_hi[wm * 32 + i * 16][kk], kBK + kPad);
        wmma::load_matrix_sync(al[i], &a_lo[wm * 32 + i * 16][kk], kBK + kPad);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j)
        wmma::load_matrix_sync(b[j], &b_s[wn * 32 + j * 16][kk], kBK + kPad);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          wmma::mma_sync(acc[i][j], al[i], b[j], acc[i][j]);  // small half first
          wmma::mma_sync(acc[i][j], ah[i], b[j], acc[i][j]);
        }
    }
    if constexpr (kFp8) {
      if (k0 + kBK == next_block || k0 + kBK >= K) {  // the block ends: scale its product
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            wmma::store_matrix_sync(&c_s[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], kBN + 4,
                                    wmma::mem_row_major);
            wmma::fill_fragment(acc[i][j], 0.0f);
          }
        __syncthreads();
        const float s = col_scales ? col_scales[sc.col_block(k0)] : 0.0f;
#pragma unroll
        for (int i = 0; i < kSums; ++i)
          sums[i] = fmaf(c_s[threadIdx.x / kBN + i * (kWmmaThreads / kBN)][col], s, sums[i]);
        next_block += sc.block_cols;
      }
    }
    __syncthreads();
  }
  if constexpr (kFp8) {
#pragma unroll
    for (int i = 0; i < kSums; ++i) {
      const int r = threadIdx.x / kBN + i * (kWmmaThreads / kBN);
      if (m0 + r < m1 && n0 + col < N) y[(m0 + r) * N + n0 + col] = sums[i];
    }
  } else {
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
        wmma::store_matrix_sync(&c_s[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], kBN + 4,
                                wmma::mem_row_major);
    __syncthreads();
    for (int idx = threadIdx.x; idx < kBM * kBN; idx += kWmmaThreads) {
      const int r = idx / kBN, c = idx % kBN;
      if (m0 + r < m1 && n0 + c < N) y[(m0 + r) * N + n0 + c] = c_s[r][c];
    }
  }
}

// ---- any dtype, any K: correct first ----------------------------------------------------
template <typename T>
__device__ float to_float(T v) {
  return float(v);
}
template <>
__device__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ float to_float<uint8_t>(uint8_t v) {  // an e4m3 code, unscaled
  return fp8_value(v);
}

// uint8_t: e4m3 codes times their block's scale (sc), as the CPU twin's scalar tail.
template <typename T>
__global__ void plain_kernel(float* y, const float* x, const void* const* table, const void* single,
                             const int32_t* offsets, const int32_t* active, int64_t rows_single,
                             int N, int K, Fp8Scales sc) {
  Group g;
  if (!find_group(&g, table, single, offsets, active, rows_single, blockIdx.y)) return;
  const auto* w = static_cast<const T*>(g.w);
  for (int64_t r = g.r0; r < g.r1; ++r)
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
      float acc = 0.0f;
      for (int kk = 0; kk < K; ++kk) {
        float wk = to_float(w[int64_t(n) * K + kk]);
        if constexpr (sizeof(T) == 1) wk *= sc.of(g.e)[sc.row_base(n) + sc.col_block(kk)];
        acc += x[r * K + kk] * wk;
      }
      y[r * N + n] = acc;
    }
}

// One launch's operands: the expert table (or one matrix, `single`, of rows_single rows of x),
// gate's and up's (table2) for the fused GLU, and the fp8 scales of each.
struct Operands {
  float* y = nullptr;
  const float* x = nullptr;
  const void* const* table = nullptr;
  const void* const* table2 = nullptr;
  const void* single = nullptr;
  const int32_t* offsets = nullptr;
  const int32_t* active = nullptr;
  int64_t rows_single = 0;
  int N = 0, K = 0;
  const float* bias = nullptr;
  int slots = 1;        // grid y of gemv and plain: active experts to walk (1: a single matrix)
  int64_t experts = 0;  // wmma: the experts whose offsets find_tile scans
  bool fp8 = false;
  Fp8Scales sc, sc2;
};

template <int MT, int R, bool kGlu, bool kFp8>
void launch_gemv(const Operands& o, cudaStream_t stream) {
  const dim3 grid((o.N + R - 1) / R, o.slots);
  gemv_kernel<MT, R, kGlu, kFp8>
      <<<grid, kGemvThreads, 0, stream>>>(o.y, o.x, o.table, o.table2, o.single, o.offsets,
                                          o.active, o.rows_single, o.N, o.K, o.bias, o.sc, o.sc2);
  QWEN3MOE_CUDA_LAUNCHED();
}

// MT for at most `rows` rows of one expert: 1, 2, 4 or 8 (more rows loop in chunks of 8). R:
// 4 weight rows a block, 8 from 4 rows of x on (x reuse); the GLU streams 4 of gate and 4 of up.
// fp8 at 8 rows of x streams half as many weight rows: its widened weights (8 floats a row)
// sit in registers beside the 8 x 8 sums, and 8 rows of them would leave 2 blocks an SM.
template <bool kGlu, bool kFp8>
void gemv_rows(int64_t max_rows, const Operands& o, cudaStream_t stream) {
  constexpr int kWide = kGlu ? 4 : 8;
  if (max_rows <= 1)
    launch_gemv<1, 4, kGlu, kFp8>(o, stream);
  else if (max_rows <= 2)
    launch_gemv<2, 4, kGlu, kFp8>(o, stream);
  else if (max_rows <= 4)
    launch_gemv<4, kWide, kGlu, kFp8>(o, stream);
  else
    launch_gemv<8, kFp8 ? kWide / 2 : kWide, kGlu, kFp8>(o, stream);
}

template <bool kGlu>
void gemv_dispatch(int64_t max_rows, const Operands& o, cudaStream_t stream) {
  if (o.fp8)
    gemv_rows<kGlu, true>(max_rows, o, stream);
  else
    gemv_rows<kGlu, false>(max_rows, o, stream);
}

void launch_wmma(const Operands& o, int64_t tiles, cudaStream_t stream) {
  QWEN3MOE_CHECK(tiles <= 65535, "moe_matmul: ", tiles, " row tiles, over the grid's 65535");
  const dim3 grid((o.N + kBN - 1) / kBN, unsigned(tiles));
  if (o.fp8)
    wmma_kernel<true><<<grid, kWmmaThreads, 0, stream>>>(o.y, o.x, o.table, o.single, o.rows_single,
                                                         o.offsets, o.experts, o.N, o.K, o.sc);
  else
    wmma_kernel<false><<<grid, kWmmaThreads, 0, stream>>>(
        o.y, o.x, o.table, o.single, o.rows_single, o.offsets, o.experts, o.N, o.K, o.sc);
  QWEN3MOE_CUDA_LAUNCHED();
}

void launch_plain(const Operands& o, DType dtype, cudaStream_t stream) {
  const dim3 grid((o.N + 255) / 256, o.slots);
  switch (dtype) {
    case DType::BF16:
      plain_kernel<__nv_bfloat16><<<grid, 256, 0, stream>>>(
          o.y, o.x, o.table, o.single, o.offsets, o.active, o.rows_single, o.N, o.K, o.sc);
      break;
    case DType::F32:
      plain_kernel<float><<<grid, 256, 0, stream>>>(o.y, o.x, o.table, o.single, o.offsets,
                                                    o.active, o.rows_single, o.N, o.K, o.sc);
      break;
    case DType::F8E4M3:
      plain_kernel<uint8_t><<<grid, 256, 0, stream>>>(o.y, o.x, o.table, o.single, o.offsets,
                                                      o.active, o.rows_single, o.N, o.K, o.sc);
      break;
    default:
      QWEN3MOE_FAIL("moe_matmul: weights of dtype ", dtype_name(dtype),
                    " are not supported (bf16, f32 and block-scaled fp8 are)");
  }
  QWEN3MOE_CUDA_LAUNCHED();
}

Fp8Scales scales_of(const ExpertWeights& w) {
  Fp8Scales s;
  if (w.dtype != DType::F8E4M3) return s;
  QWEN3MOE_CHECK(w.scales && w.block_rows > 0 && w.block_cols > 0,
                 "moe_matmul: fp8 experts without their block scales");
  s.table = w.scales;
  s.block_rows = int(w.block_rows);
  s.block_cols = int(w.block_cols);
  s.ld = int((w.cols + w.block_cols - 1) / w.block_cols);
  return s;
}

Fp8Scales scales_of(const Weight& w) {
  Fp8Scales s;
  if (w.dtype != DType::F8E4M3) return s;
  QWEN3MOE_CHECK(w.scale && w.block_rows > 0 && w.block_cols > 0,
                 "matmul: an fp8 weight without its block scales");
  s.single = w.scale;
  s.block_rows = int(w.block_rows);
  s.block_cols = int(w.block_cols);
  s.ld = int(w.scale_ld);
  s.row0 = int(w.scale_row0);
  s.col0 = int(w.scale_col0);
  return s;
}

// wmma's fp8 tiles: K in groups of 16 and every block boundary on a kBK step, so each step's
// product belongs to one block.
bool wmma_fits_fp8(int64_t K, const Fp8Scales& s) {
  return K % 16 == 0 && s.block_cols % kBK == 0 && (s.col0 % s.block_cols) % kBK == 0;
}

Operands dense_operands(float* y, const float* x, const Weight& w, int64_t m, const float* bias) {
  QWEN3MOE_CHECK(w.rows <= INT32_MAX && w.cols <= INT32_MAX && w.ld == w.cols, "matmul: weights ",
                 w.rows, "x", w.cols, " ld ", w.ld, " need ld = cols and at most 2^31 - 1 of each");
  Operands o;
  o.y = y;
  o.x = x;
  o.single = w.data;
  o.rows_single = m;
  o.N = int(w.rows);
  o.K = int(w.cols);
  o.bias = bias;
  o.fp8 = w.dtype == DType::F8E4M3;
  o.sc = scales_of(w);
  return o;
}

}  // namespace

bool gemv_applies(const Weight& w, int64_t m) {
  const bool bf16 = w.dtype == DType::BF16 && w.cols % 8 == 0;
  // Each 8 columns in one block: the loader checks this for checkpoints; a Weight made by
  // hand that breaks it takes the plain kernel.
  const bool fp8 = w.dtype == DType::F8E4M3 && w.cols % 16 == 0 && w.block_cols % 8 == 0 &&
                   w.scale_col0 % 8 == 0;
  return (bf16 || fp8) && m <= kGemvMaxRows && w.ld == w.cols;
}

void gemv(float* y, const float* x, const Weight& w, int64_t m, const float* bias,
          cudaStream_t stream) {
  QWEN3MOE_CHECK(
      gemv_applies(w, m), "gemv: weights ", w.rows, "x", w.cols, " ld ", w.ld, " dtype ",
      dtype_name(w.dtype), " with m=", m,
      " need bf16 with K % 8 == 0 or fp8 with K % 16 == 0, ld = K and m <= ", kGemvMaxRows);
  if (m == 0 || w.rows == 0) return;
  gemv_dispatch<false>(m, dense_operands(y, x, w, m, bias), stream);
}

void fp8_matmul(float* y, const float* x, const Weight& w, int64_t m, cudaStream_t stream) {
  QWEN3MOE_CHECK(w.dtype == DType::F8E4M3, "fp8_matmul: weights of dtype ", dtype_name(w.dtype));
  if (m == 0 || w.rows == 0) return;
  const Operands o = dense_operands(y, x, w, m, nullptr);
  if (wmma_fits_fp8(o.K, o.sc))
    launch_wmma(o, (m + kBM - 1) / kBM, stream);
  else
    launch_plain(o, w.dtype, stream);
}

MoeMatmulPath moe_matmul_path(const ExpertWeights& w, int64_t experts, int64_t rows) {
  const bool wide = rows >= kWmmaMinRowsPerExpert * experts;
  if (w.dtype == DType::F8E4M3) {
    if (w.cols % 16 != 0 || w.block_cols % 8 != 0) return MoeMatmulPath::kPlain;
    if (!wide) return MoeMatmulPath::kGemv;
    return wmma_fits_fp8(w.cols, scales_of(w)) ? MoeMatmulPath::kWmma : MoeMatmulPath::kPlain;
  }
  if (w.dtype != DType::BF16 || w.cols % 8 != 0) return MoeMatmulPath::kPlain;
  return wide ? MoeMatmulPath::kWmma : MoeMatmulPath::kGemv;
}

namespace {
Operands expert_operands(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                         const int32_t* active, int64_t experts, int64_t rows) {
  QWEN3MOE_CHECK(w.rows <= INT32_MAX && w.cols <= INT32_MAX, "moe_matmul: expert of ", w.rows, "x",
                 w.cols, " is too large");
  Operands o;
  o.y = y;
  o.x = x;
  o.table = w.table;
  o.offsets = offsets;
  o.active = active;
  o.N = int(w.rows);
  o.K = int(w.cols);
  o.slots = int(std::min(experts, rows));
  o.experts = experts;
  o.fp8 = w.dtype == DType::F8E4M3;
  o.sc = scales_of(w);
  return o;
}
}  // namespace

void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens,
                cudaStream_t stream) {
  if (rows == 0 || w.rows == 0) return;
  const Operands o = expert_operands(y, x, w, offsets, active, experts, rows);
  switch (moe_matmul_path(w, experts, rows)) {
    case MoeMatmulPath::kGemv:
      gemv_dispatch<false>(std::min(tokens, rows), o, stream);
      return;
    case MoeMatmulPath::kWmma:  // every expert's row tiles from one upper bound
      launch_wmma(o, (rows + kBM - 1) / kBM + o.slots, stream);
      return;
    case MoeMatmulPath::kPlain:
      launch_plain(o, w.dtype, stream);
      return;
  }
}

void moe_swiglu(float* act, float* gate_out, float* up_out, const float* x,
                const ExpertWeights& gate, const ExpertWeights& up, const int32_t* offsets,
                const int32_t* active, int64_t experts, int64_t rows, int64_t tokens,
                cudaStream_t stream) {
  if (rows == 0 || gate.rows == 0) return;
  QWEN3MOE_CHECK(gate.rows == up.rows && gate.cols == up.cols && gate.dtype == up.dtype &&
                     gate.block_rows == up.block_rows && gate.block_cols == up.block_cols,
                 "moe_swiglu: gate ", gate.rows, "x", gate.cols, " and up ", up.rows, "x", up.cols,
                 " differ");
  if (moe_matmul_path(gate, experts, rows) == MoeMatmulPath::kGemv) {
    Operands o = expert_operands(act, x, gate, offsets, active, experts, rows);
    o.table2 = up.table;
    o.sc2 = scales_of(up);
    gemv_dispatch<true>(std::min(tokens, rows), o, stream);
    return;
  }
  moe_matmul(gate_out, x, gate, offsets, active, experts, rows, tokens, stream);
  moe_matmul(up_out, x, up, offsets, active, experts, rows, tokens, stream);
  silu_mul(act, gate_out, up_out, rows, gate.rows, stream);
}

}  // namespace qwen3moe::cuda
