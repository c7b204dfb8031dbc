// Elementwise and row-movement ops: SiLU-mul, add, embedding lookup, KV-cache writes, and the
// gather / weighted scatter-add that permute tokens to experts and back.
#include <cmath>
#include <cstring>

#include "kernels/common/check.h"
#include "kernels/cpu/ops.h"

namespace qwen3moe::cpu {

void silu_mul(float* out, const float* gate, const float* up, int64_t rows, int64_t dim) {
  const int64_t n = rows * dim;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void embedding(float* out, const Weight& table, const int32_t* ids, int64_t tokens,
               int64_t row_offset) {
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t row = int64_t(ids[t]) - row_offset;
    float* o = out + t * table.cols;
    if (row < 0 || row >= table.rows) {
      std::memset(o, 0, sizeof(float) * size_t(table.cols));
    } else {
      weight_row_to_f32(o, table, row);
    }
  }
}

void kv_cache_write(const KvCacheView& cache, const float* k, const float* v, const int32_t* slots,
                    int64_t tokens, int64_t kv_dim, int64_t head_dim) {
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[t] == kPaddingSlot) continue;  // a padding token keeps nothing
    QWEN3MOE_CHECK(slots[t] >= 0, "kv_cache_write: negative slot ", slots[t], " for token ", t);
    const int64_t at = int64_t(slots[t]) * kv_dim;
    const float *kt = k + t * kv_dim, *vt = v + t * kv_dim;
    switch (cache.dtype) {
      case DType::F32:
        std::memcpy(static_cast<float*>(cache.k) + at, kt, sizeof(float) * size_t(kv_dim));
        std::memcpy(static_cast<float*>(cache.v) + at, vt, sizeof(float) * size_t(kv_dim));
        break;
      case DType::BF16:
        for (int64_t j = 0; j < kv_dim; ++j) {
          static_cast<uint16_t*>(cache.k)[at + j] = f32_to_bf16(kt[j]);
          static_cast<uint16_t*>(cache.v)[at + j] = f32_to_bf16(vt[j]);
        }
        break;
      case DType::F8E4M3:
        for (int64_t j = 0; j < kv_dim; ++j) {
          const int64_t h = j / head_dim;
          static_cast<uint8_t*>(cache.k)[at + j] = f32_to_fp8_e4m3(kt[j] / cache.k_scale[h]);
          static_cast<uint8_t*>(cache.v)[at + j] = f32_to_fp8_e4m3(vt[j] / cache.v_scale[h]);
        }
        break;
      default:
        QWEN3MOE_FAIL("kv_cache_write: KV cache dtype ", dtype_name(cache.dtype),
                      " is not supported (f32, bf16, fp8)");
    }
  }
}

void gather_rows(float* out, const float* in, const int32_t* idx, int64_t n, int64_t dim) {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * dim, in + int64_t(idx[i]) * dim, sizeof(float) * size_t(dim));
}

void rows_to_bf16(uint16_t* out, const float* in, const int32_t* idx, int64_t n, int64_t dim) {
#pragma omp parallel for schedule(static) if (n * dim > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float* src = in + (idx ? int64_t(idx[i]) : i) * dim;
    uint16_t* dst = out + i * dim;
    for (int64_t d = 0; d < dim; ++d) dst[d] = f32_to_bf16(src[d]);
  }
}

void rows_to_f32(float* out, const uint16_t* in, int64_t n, int64_t dim) {
#pragma omp parallel for schedule(static) if (n * dim > 65536)
  for (int64_t i = 0; i < n * dim; ++i) out[i] = bf16_to_f32(in[i]);
}

}  // namespace qwen3moe::cpu
