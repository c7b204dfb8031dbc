// The AVX-512 fp8 tile (fp8_avx512.h). Each e4m3 byte becomes the f16 with its sign, exponent
// and mantissa bits (2^-8 times its value, subnormals included), as in matmul.cpp, 32 bytes at
// a time; each block's products are summed unscaled and the sum scaled once by the block's
// scale times 2^8.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge operand, which its
// -W(maybe-)uninitialized reports inside immintrin.h (a known false positive); the state where
// the header is read is what counts, so this comes before every include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "kernels/cpu/fp8_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>

#include "kernels/common/check.h"
#include "kernels/common/dtype.h"

#define QWEN3MOE_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

namespace qwen3moe::cpu {
namespace {

std::atomic<bool> g_avx512_on{true};

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return has;
}

// 16-bit lanes of sign-extended codes shifted to f16 bit positions, bit 14 (a sign copy) cleared.
QWEN3MOE_AVX512 inline __m512i f16_bits_32(const uint8_t* p) {
  return _mm512_and_si512(
      _mm512_slli_epi16(
          _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 7),
      _mm512_set1_epi16(int16_t(0xBFFF)));
}

QWEN3MOE_AVX512 inline __m512 widen16(const uint8_t* p) {
  const __m256i h = _mm256_and_si256(
      _mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
                        7),
      _mm256_set1_epi16(int16_t(0xBFFF)));
  return _mm512_cvtph_ps(h);
}

// 8 codes in the low 8 lanes, zeros above.
QWEN3MOE_AVX512 inline __m512 widen8(const uint8_t* p) {
  const __m128i h = _mm_and_si128(
      _mm_slli_epi16(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))), 7),
      _mm_set1_epi16(int16_t(0xBFFF)));
  return _mm512_maskz_mov_ps(0x00FF, _mm512_castps256_ps512(_mm256_cvtph_ps(h)));
}

template <int MR, int NR>
QWEN3MOE_AVX512 void tile(float* y, int64_t ldy, const float* x, int64_t ldx, const Weight& w,
                          int64_t n0, int64_t K, const float* bias) {
  const uint8_t* wr[NR];
  const float* srow[NR];  // each row's scales: one row of the scale matrix
  for (int j = 0; j < NR; ++j) {
    wr[j] = static_cast<const uint8_t*>(w.data) + (n0 + j) * w.ld;
    srow[j] = w.scale + ((n0 + j + w.scale_row0) / w.block_rows) * w.scale_ld;
  }
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  // Blocks and the slice's first column are multiples of 8: each block is whole 32-, 16- and
  // 8-wide steps.
  int64_t k = 0, block = w.scale_col0 / w.block_cols;
  int64_t block_end = w.block_cols - w.scale_col0 % w.block_cols;
  const int64_t k8 = K / 8 * 8;
  for (; k < k8; ++block, block_end += w.block_cols) {
    const int64_t end = std::min(block_end, k8);
    __m512 sum[MR][NR];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) sum[i][j] = _mm512_setzero_ps();
    for (; k + 32 <= end; k += 32) {
      if (k % 64 == 0)
        for (int j = 0; j < NR; ++j)
          _mm_prefetch(reinterpret_cast<const char*>(wr[j]) + k + 1024, _MM_HINT_T0);
      __m512 lo[NR], hi[NR];
      for (int j = 0; j < NR; ++j) {
        const __m512i h = f16_bits_32(wr[j] + k);
        lo[j] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
        hi[j] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
      }
      for (int i = 0; i < MR; ++i) {
        const __m512 x_lo = _mm512_loadu_ps(x + i * ldx + k),
                     x_hi = _mm512_loadu_ps(x + i * ldx + k + 16);
        for (int j = 0; j < NR; ++j)
          sum[i][j] = _mm512_fmadd_ps(x_hi, hi[j], _mm512_fmadd_ps(x_lo, lo[j], sum[i][j]));
      }
    }
    if (k + 16 <= end) {
      __m512 wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = widen16(wr[j] + k);
      for (int i = 0; i < MR; ++i) {
        const __m512 xv = _mm512_loadu_ps(x + i * ldx + k);
        for (int j = 0; j < NR; ++j) sum[i][j] = _mm512_fmadd_ps(xv, wv[j], sum[i][j]);
      }
      k += 16;
    }
    if (k < end) {  // 8 columns left in this block
      __m512 wv[NR];
      for (int j = 0; j < NR; ++j) wv[j] = widen8(wr[j] + k);
      for (int i = 0; i < MR; ++i) {
        const __m512 xv = _mm512_maskz_loadu_ps(0x00FF, x + i * ldx + k);
        for (int j = 0; j < NR; ++j) sum[i][j] = _mm512_fmadd_ps(xv, wv[j], sum[i][j]);
      }
      k += 8;
    }
    for (int j = 0; j < NR; ++j) {
      const __m512 factor = _mm512_set1_ps(srow[j][block] * 256.0f);
      for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(sum[i][j], factor, acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) {
      float s = _mm512_reduce_add_ps(acc[i][j]);
      for (int64_t kk = k; kk < K; ++kk)  // K % 8 columns
        s += x[i * ldx + kk] * fp8_e4m3_to_f32(wr[j][kk]) * w.scale_at(n0 + j, kk);
      if (bias) s += bias[n0 + j];
      y[i * ldy + n0 + j] = s;
    }
}

template <int MR>
void tile_rows(int nr, float* y, int64_t ldy, const float* x, int64_t ldx, const Weight& w,
               int64_t n0, int64_t K, const float* bias) {
  switch (nr) {
    case 1:
      return tile<MR, 1>(y, ldy, x, ldx, w, n0, K, bias);
    case 2:
      return tile<MR, 2>(y, ldy, x, ldx, w, n0, K, bias);
    case 3:
      return tile<MR, 3>(y, ldy, x, ldx, w, n0, K, bias);
    case 4:
      return tile<MR, 4>(y, ldy, x, ldx, w, n0, K, bias);
    default:
      QWEN3MOE_FAIL("fp8_tile_avx512: ", nr, " weight rows, not 1..4");
  }
}

}  // namespace

bool fp8_avx512_enabled() {
  return g_avx512_on.load(std::memory_order_relaxed) && cpu_has_avx512();
}

void set_fp8_avx512(bool on) {
  g_avx512_on.store(on, std::memory_order_relaxed);
}

void fp8_tile_avx512(int mr, int nr, float* y, int64_t ldy, const float* x, int64_t ldx,
                     const Weight& w, int64_t n0, int64_t K, const float* bias) {
  switch (mr) {
    case 1:
      return tile_rows<1>(nr, y, ldy, x, ldx, w, n0, K, bias);
    case 2:
      return tile_rows<2>(nr, y, ldy, x, ldx, w, n0, K, bias);
    case 3:
      return tile_rows<3>(nr, y, ldy, x, ldx, w, n0, K, bias);
    case 4:
      return tile_rows<4>(nr, y, ldy, x, ldx, w, n0, K, bias);
    default:
      QWEN3MOE_FAIL("fp8_tile_avx512: ", mr, " rows of x, not 1..4");
  }
}

}  // namespace qwen3moe::cpu
