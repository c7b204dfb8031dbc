#include "kernels/cpu/peaks.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace qwen3moe::cpu {
namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

double measure_read_bandwidth(size_t bytes, int reps) {
  const size_t n = bytes / sizeof(float) / 32 * 32;
  float* buf = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = float(i & 7);  // first touch by the reading thread
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; i += 32) {
      __m256 a = _mm256_load_ps(buf + i), b = _mm256_load_ps(buf + i + 8);
      __m256 c = _mm256_load_ps(buf + i + 16), d = _mm256_load_ps(buf + i + 24);
      __m256 s = _mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, d));
      total += _mm256_cvtss_f32(s);
    }
    sink = sink + total;
    best = std::max(best, double(n * sizeof(float)) / seconds_since(t0) / 1e9);
  }
  std::free(buf);
  return best;
}

double measure_fma_peak() {
  constexpr int kChains = 12;  // > latency x ports, so the FMA units never wait
  constexpr long kIters = 20'000'000;
  const auto t0 = std::chrono::steady_clock::now();
  int threads = 1;
  float sink = 0;
#pragma omp parallel reduction(+ : sink)
  {
#pragma omp single
    threads = omp_get_num_threads();
    __m256 acc[kChains];
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(float(c));
    const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < kIters; ++i)
      for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
    for (int c = 0; c < kChains; ++c) sink += _mm256_cvtss_f32(acc[c]);
  }
  const double secs = seconds_since(t0);
  volatile float keep = sink;
  (void)keep;
  return double(threads) * double(kIters) * kChains * 8 * 2 / secs / 1e9;
}

}  // namespace qwen3moe::cpu
