// y[M,N] = x[M,K] · w[N,K]^T with weights in their stored dtype (bf16, f16, f32, or block-scaled
// fp8 e4m3: each weight widened in registers and multiplied by its 128x128 block's scale, so an
// fp8 weight streams from memory as one byte).
//
// Two algorithms, chosen by M (gemm_path):
// - own: register-tiled AVX2 kernel that widens the weights to f32 in registers, so every
//   weight byte is read from memory exactly once per call. Decode (M = batch) is bound by the
//   weight stream, so this is the one that matters there.
// - blas: OpenBLAS sgemm (single-threaded per OpenMP thread) over panels of 64 weight rows
//   widened to f32 in a thread-local buffer. Prefill (M in the hundreds) is compute bound and
//   sgemm's packed micro-kernel beats ours there. `qwen3moe bench --gemm` measures both.
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/common/check.h"
#include "kernels/cpu/fp8_avx512.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"

namespace qwen3moe::cpu {
namespace {

// 8 consecutive weights widened to f32.
template <DType T>
inline __m256 load8(const void* base, int64_t i) {
  if constexpr (T == DType::BF16) {
    __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else if constexpr (T == DType::F16) {
    __m128i h =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    return _mm256_cvtph_ps(h);
  } else if constexpr (T == DType::F8E4M3) {
    // Each e4m3 byte as the f16 whose sign, exponent and mantissa bits are its own (s, 0, eeee,
    // mmm0000000): 2^-8 times its value, subnormals included (the caller's factor carries the
    // 2^8). Byte to high half of a 16-bit lane, arithmetic shift right by one, clear bit 14.
    // The NaN codes 0x7F/0xFF read as +-480 here (checkpoints hold none: 448 is the largest).
    const __m128i b =
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i));
    const __m128i h = _mm_and_si128(_mm_srai_epi16(_mm_unpacklo_epi8(_mm_setzero_si128(), b), 1),
                                    _mm_set1_epi16(int16_t(0xBFFF)));
    return _mm256_cvtph_ps(h);
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  }
}

// 16 consecutive e4m3 weights as two vectors of 8 in load8's units (2^-8 times the value):
// one 16-byte load and one widening for both halves. Each byte sign-extended to 16 bits and
// shifted left by 7 puts its sign in bit 15 and its exponent and mantissa in bits 13..7, with
// a copy of the sign in bit 14, which the mask clears.
inline void load16_fp8(const void* base, int64_t i, __m256& lo, __m256& hi) {
  const __m128i b =
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint8_t*>(base) + i));
  const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7),
                                     _mm256_set1_epi16(int16_t(0xBFFF)));
  lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
  hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
}

// The factor of an fp8 block in load8's units (its scale times 2^8).
inline float fp8_block_factor(const Weight& w, int64_t row, int64_t k) {
  return w.scale_at(row, k) * 256.0f;
}

template <DType T>
inline float load1(const void* base, int64_t i) {
  if constexpr (T == DType::BF16) {
    return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
  } else if constexpr (T == DType::F16) {
    return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
  } else if constexpr (T == DType::F8E4M3) {
    return fp8_e4m3_to_f32(static_cast<const uint8_t*>(base)[i]);  // unscaled
  } else {
    return static_cast<const float*>(base)[i];
  }
}

// One MR x NR tile of y: rows m0.., weight rows n0.., over the whole K.
template <DType T, int MR, int NR>
inline void tile(float* y, int64_t ldy, const float* x, int64_t ldx, const Weight& w, int64_t n0,
                 int64_t K, const float* bias) {
  if constexpr (T == DType::F8E4M3)
    if (fp8_avx512_enabled()) return fp8_tile_avx512(MR, NR, y, ldy, x, ldx, w, n0, K, bias);
  const size_t esz = dtype_size(T);
  const char* wbase = static_cast<const char*>(w.data);
  const void* wr[NR];
  for (int j = 0; j < NR; ++j) wr[j] = wbase + size_t(n0 + j) * size_t(w.ld) * esz;
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  if constexpr (T == DType::F8E4M3) {
    // Block by block along K: each row's scales are one row of the scale matrix, so the
    // factors come from an index that steps by one (no division in the loop). Block
    // boundaries and the slice's first column are multiples of 8: every block is whole
    // 16- and 8-wide steps, and the 8-wide tail of K % 16 stays in its block.
    const float* srow[NR];
    for (int j = 0; j < NR; ++j)
      srow[j] = w.scale + ((n0 + j + w.scale_row0) / w.block_rows) * w.scale_ld;
    int64_t block = w.scale_col0 / w.block_cols;
    int64_t block_end = w.block_cols - w.scale_col0 % w.block_cols;
    // Decode's small tiles (MR x NR <= 4 accumulators) sum each block's products unscaled and
    // scale the block's sum once: a multiply per block instead of one per weight vector,
    // which is what bounds this loop on two cores. Larger tiles have no registers to spare
    // for the second set of sums and scale the weights.
    constexpr bool kBlockSums = MR * NR <= 4;
    const int64_t k8 = K / 8 * 8;
    for (; k < k8; ++block, block_end += w.block_cols) {
      const int64_t end = std::min(block_end, k8);
      __m256 factor[NR];
      for (int j = 0; j < NR; ++j) factor[j] = _mm256_set1_ps(srow[j][block] * 256.0f);
      __m256 sum[MR][NR];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) sum[i][j] = kBlockSums ? _mm256_setzero_ps() : acc[i][j];
      for (; k + 16 <= end; k += 16) {
        if (k % 64 == 0)
          for (int j = 0; j < NR; ++j)
            _mm_prefetch(static_cast<const char*>(wr[j]) + k + 1024, _MM_HINT_T0);
        __m256 lo[NR], hi[NR];
        for (int j = 0; j < NR; ++j) {
          load16_fp8(wr[j], k, lo[j], hi[j]);
          if constexpr (!kBlockSums) {
            lo[j] = _mm256_mul_ps(lo[j], factor[j]);
            hi[j] = _mm256_mul_ps(hi[j], factor[j]);
          }
        }
        for (int i = 0; i < MR; ++i) {
          const __m256 x_lo = _mm256_loadu_ps(x + i * ldx + k),
                       x_hi = _mm256_loadu_ps(x + i * ldx + k + 8);
          for (int j = 0; j < NR; ++j)
            sum[i][j] = _mm256_fmadd_ps(x_hi, hi[j], _mm256_fmadd_ps(x_lo, lo[j], sum[i][j]));
        }
      }
      if (k < end) {  // 8 columns left in this block
        __m256 wv[NR];
        for (int j = 0; j < NR; ++j) {
          wv[j] = load8<T>(wr[j], k);
          if constexpr (!kBlockSums) wv[j] = _mm256_mul_ps(wv[j], factor[j]);
        }
        for (int i = 0; i < MR; ++i) {
          const __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
          for (int j = 0; j < NR; ++j) sum[i][j] = _mm256_fmadd_ps(xv, wv[j], sum[i][j]);
        }
        k += 8;
      }
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j)
          acc[i][j] = kBlockSums ? _mm256_fmadd_ps(sum[i][j], factor[j], acc[i][j]) : sum[i][j];
    }
  }
  for (; k + 8 <= K; k += 8) {
    __m256 wv[NR];
    // Ask for the weights a few cache lines ahead: decode streams them from DRAM once, and
    // the hardware prefetcher alone leaves bandwidth unused between the short rows.
    if (k % 32 == 0)
      for (int j = 0; j < NR; ++j)
        _mm_prefetch(static_cast<const char*>(wr[j]) + (k + 512) * int64_t(sizeof(uint16_t)),
                     _MM_HINT_T0);
    for (int j = 0; j < NR; ++j) wv[j] = load8<T>(wr[j], k);  // fp8 took every 8 above
    for (int i = 0; i < MR; ++i) {
      __m256 xv = _mm256_loadu_ps(x + i * ldx + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      float s = hsum8(acc[i][j]);
      for (int64_t kk = k; kk < K; ++kk) {
        float wk = load1<T>(wr[j], kk);
        if constexpr (T == DType::F8E4M3) wk *= w.scale_at(n0 + j, kk);
        s += x[i * ldx + kk] * wk;
      }
      if (bias) s += bias[n0 + j];
      y[i * ldy + n0 + j] = s;
    }
  }
}

// Rows [0, MR) of x against weight rows [n, n + 4): the tile shapes that fit the 16 AVX2
// registers (MR x NR accumulators plus the loads).
template <DType T, int MR>
inline void rows_x4(float* y, int64_t N, const float* x, int64_t K, const Weight& w, int64_t n,
                    const float* bias) {
  if constexpr (MR <= 2) {
    tile<T, MR, 4>(y, N, x, K, w, n, K, bias);
  } else {
    tile<T, MR, 2>(y, N, x, K, w, n, K, bias);
    tile<T, MR, 2>(y, N, x, K, w, n + 2, K, bias);
  }
}

// Serial: all m rows of y against weight rows [n_begin, n_end). Weight rows are the outer loop:
// four of them (a few KB) stay in L1 while every group of 4 rows of x passes over them, so the
// weights are read from memory once whatever m is; x (m <= 48 rows here) stays in L2.
template <DType T>
void own_range(float* y, const float* x, const Weight& w, int64_t m, const float* bias,
               int64_t n_begin, int64_t n_end) {
  const int64_t N = w.rows, K = w.cols;
  int64_t n = n_begin;
  for (; n + 4 <= n_end; n += 4) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) rows_x4<T, 4>(y + i * N, N, x + i * K, K, w, n, bias);
    switch (m - i) {
      case 3:
        rows_x4<T, 3>(y + i * N, N, x + i * K, K, w, n, bias);
        break;
      case 2:
        rows_x4<T, 2>(y + i * N, N, x + i * K, K, w, n, bias);
        break;
      case 1:
        rows_x4<T, 1>(y + i * N, N, x + i * K, K, w, n, bias);
        break;
      default:
        break;
    }
  }
  for (; n < n_end; ++n) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) tile<T, 4, 1>(y + i * N, N, x + i * K, K, w, n, K, bias);
    for (; i < m; ++i) tile<T, 1, 1>(y + i * N, N, x + i * K, K, w, n, K, bias);
  }
}

void own_range_any(float* y, const float* x, const Weight& w, int64_t m, const float* bias,
                   int64_t n_begin, int64_t n_end) {
  switch (w.dtype) {
    case DType::BF16:
      return own_range<DType::BF16>(y, x, w, m, bias, n_begin, n_end);
    case DType::F16:
      return own_range<DType::F16>(y, x, w, m, bias, n_begin, n_end);
    case DType::F32:
      return own_range<DType::F32>(y, x, w, m, bias, n_begin, n_end);
    case DType::F8E4M3:
      return own_range<DType::F8E4M3>(y, x, w, m, bias, n_begin, n_end);
    default:
      QWEN3MOE_FAIL("matmul: unsupported weight dtype ", dtype_name(w.dtype));
  }
}

constexpr int64_t kPanelRows = 64;

}  // namespace

void weight_row_to_f32(float* out, const Weight& w, int64_t row) {
  const size_t esz = dtype_size(w.dtype);
  const void* src = static_cast<const char*>(w.data) + size_t(row) * size_t(w.ld) * esz;
  const int64_t K = w.cols;
  int64_t k = 0;
  switch (w.dtype) {
    case DType::BF16:
      for (; k + 8 <= K; k += 8) _mm256_storeu_ps(out + k, load8<DType::BF16>(src, k));
      for (; k < K; ++k) out[k] = load1<DType::BF16>(src, k);
      break;
    case DType::F16:
      for (; k + 8 <= K; k += 8) _mm256_storeu_ps(out + k, load8<DType::F16>(src, k));
      for (; k < K; ++k) out[k] = load1<DType::F16>(src, k);
      break;
    case DType::F32:
      std::copy_n(static_cast<const float*>(src), K, out);
      break;
    case DType::F8E4M3: {
      for (; k + 8 <= K; k += 8) {
        const float f = fp8_block_factor(w, row, k);
        _mm256_storeu_ps(out + k,
                         _mm256_mul_ps(load8<DType::F8E4M3>(src, k), _mm256_broadcast_ss(&f)));
      }
      for (; k < K; ++k) out[k] = load1<DType::F8E4M3>(src, k) * w.scale_at(row, k);
      break;
    }
    default:
      QWEN3MOE_FAIL("matmul: unsupported weight dtype ", dtype_name(w.dtype));
  }
}

// Crossover measured with `qwen3moe bench --gemm` on the 2-core Zen 3 build machine: the own
// kernel wins up to M = 32, sgemm from M = 64 (see README, Performance).
GemmPath gemm_path(int64_t m) {
  return m >= 48 ? GemmPath::kBlas : GemmPath::kOwn;
}

namespace {

// Serial: weight rows [n0, n0 + rows) widened into `panel`, then one single-threaded sgemm.
void blas_panel(float* y, const float* x, const Weight& w, int64_t m, const float* bias, int64_t n0,
                float* panel) {
  const int64_t N = w.rows, K = w.cols, rows = std::min(kPanelRows, N - n0);
  for (int64_t r = 0; r < rows; ++r) weight_row_to_f32(panel + r * K, w, n0 + r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(rows), int(K), 1.0f, x, int(K),
              panel, int(K), 0.0f, y + n0, int(N));
  if (bias)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < rows; ++r) y[i * N + n0 + r] += bias[n0 + r];
}

// All groups in ONE parallel region: outputs of different groups are disjoint rows of y, so
// threads move from group to group without a barrier between them (a decode step of a MoE
// layer is k tiny GEMMs; a barrier each would cost more than the math). force: the path for
// every group (tests and bench), or nullptr for gemm_path's choice.
void run_groups(float* y, const float* x, const Weight* w, const int64_t* offsets, int num_groups,
                const float* bias, const GemmPath* force) {
  static const bool single = [] {
    // OpenBLAS threads would fight the OpenMP ones for the same cores.
    openblas_set_num_threads(1);
    return true;
  }();
  (void)single;
  int64_t max_k = 0;
  double macs = 0;
  for (int g = 0; g < num_groups; ++g) {
    max_k = std::max(max_k, w[g].cols);
    macs += double(offsets[g + 1] - offsets[g]) * double(w[g].rows) * double(w[g].cols);
  }
  // Below ~256K multiply-adds a parallel region's fork and barrier cost more than they save.
#pragma omp parallel if (macs > 262144.0)
  {
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    std::vector<float> panel;
    for (int g = 0; g < num_groups; ++g) {
      const int64_t m = offsets[g + 1] - offsets[g], N = w[g].rows;
      if (m <= 0 || N == 0) continue;
      float* yg = y + offsets[g] * N;
      const float* xg = x + offsets[g] * w[g].cols;
      if ((force ? *force : gemm_path(m)) == GemmPath::kOwn) {
        // Each thread streams a distinct part of the weights; chunks are multiples of 4 rows.
        const int64_t chunk = ((N + threads - 1) / threads + 3) / 4 * 4;
        const int64_t n_begin = std::min(N, t * chunk), n_end = std::min(N, n_begin + chunk);
        if (n_begin < n_end) own_range_any(yg, xg, w[g], m, bias, n_begin, n_end);
      } else {
        if (panel.empty()) panel.resize(static_cast<size_t>(kPanelRows * max_k));
        const int64_t panels = (N + kPanelRows - 1) / kPanelRows;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t p = 0; p < panels; ++p)
          blas_panel(yg, xg, w[g], m, bias, p * kPanelRows, panel.data());
      }
    }
  }
}

}  // namespace

void matmul_own(float* y, const float* x, const Weight& w, int64_t m, const float* bias) {
  const int64_t offsets[2] = {0, m};
  const GemmPath path = GemmPath::kOwn;
  run_groups(y, x, &w, offsets, 1, bias, &path);
}

void matmul_blas(float* y, const float* x, const Weight& w, int64_t m, const float* bias) {
  const int64_t offsets[2] = {0, m};
  const GemmPath path = GemmPath::kBlas;
  run_groups(y, x, &w, offsets, 1, bias, &path);
}

void matmul(float* y, const float* x, const Weight& w, int64_t m, const float* bias) {
  const int64_t offsets[2] = {0, m};
  run_groups(y, x, &w, offsets, 1, bias, nullptr);
}

void grouped_matmul(float* y, const float* x, const Weight* w, const int64_t* offsets,
                    int num_groups) {
  run_groups(y, x, w, offsets, num_groups, nullptr, nullptr);
}

}  // namespace qwen3moe::cpu
