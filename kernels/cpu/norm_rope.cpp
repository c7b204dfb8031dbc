// RMSNorm and rotate-half RoPE, both computed in f32 as Hugging Face does.
#include <cmath>
#include <vector>

#include "kernels/cpu/ops.h"

namespace qwen3moe::cpu {

void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim, float eps) {
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    // Sum of squares in double: the reference is float64 and rows can be thousands wide.
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * double(xr[i]);
    const float inv = float(1.0 / std::sqrt(ss / double(dim) + double(eps)));
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void rope(float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
          const float* inv_freq, float scale) {
  const int64_t half = head_dim / 2;
  // The angle is the f32 product pos * inv_freq as Hugging Face forms it, its cos/sin taken in
  // double, then scaled in f32.
#pragma omp parallel for schedule(static) if (tokens * heads * head_dim > 32768)
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<float> c(half), s(half);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = float(positions[t]) * inv_freq[i];
      c[i] = float(std::cos(double(angle))) * scale;
      s[i] = float(std::sin(double(angle))) * scale;
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace qwen3moe::cpu
