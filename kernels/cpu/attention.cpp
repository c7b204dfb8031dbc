// Causal attention over the paged KV cache. One (token, q head) pair per work item: the
// scores against every visible cache position, a max-subtracted softmax, then the weighted
// sum of values. GQA: q head h reads kv head h / (q_heads / kv_heads). A bf16 or fp8 cache row
// is widened to f32 as it is read.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/check.h"
#include "kernels/common/dtype.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"

namespace qwen3moe::cpu {

namespace {

// Row `slot`, head `kvh` of a cache side as f32: in place for f32, else widened into `buf`.
const float* kv_row(const void* base, DType dtype, const float* scale, int64_t slot, int64_t kv_dim,
                    int64_t kvh, int64_t head_dim, float* buf) {
  const int64_t at = slot * kv_dim + kvh * head_dim;
  switch (dtype) {
    case DType::BF16:
      for (int64_t d = 0; d < head_dim; ++d)
        buf[d] = bf16_to_f32(static_cast<const uint16_t*>(base)[at + d]);
      return buf;
    case DType::F8E4M3:
      for (int64_t d = 0; d < head_dim; ++d)
        buf[d] = fp8_e4m3_to_f32(static_cast<const uint8_t*>(base)[at + d]) * scale[kvh];
      return buf;
    default:
      return static_cast<const float*>(base) + at;
  }
}

}  // namespace

void attention(float* out, const float* q, const KvCacheView& cache, const AttentionBatch& batch,
               int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale) {
  QWEN3MOE_CHECK(
      cache.dtype == DType::F32 || cache.dtype == DType::BF16 || cache.dtype == DType::F8E4M3,
      "attention: KV cache dtype ", dtype_name(cache.dtype), " is not supported");
  const int64_t T = batch.num_tokens;
  const int64_t group = q_heads / kv_heads;
  const int64_t kv_dim = kv_heads * head_dim;
  const int64_t bs = batch.block_size;
  const int64_t work = T * q_heads;
  int64_t visible = 0;  // positions read over all tokens: the size of the job
  for (int64_t t = 0; t < T; ++t) visible += int64_t(batch.positions[t]) + 1;
#pragma omp parallel if (visible * q_heads * head_dim > 65536)
  {
    std::vector<float> scores, row(static_cast<size_t>(head_dim));
#pragma omp for schedule(dynamic, 4)
    for (int64_t item = 0; item < work; ++item) {
      const int64_t t = item / q_heads, h = item % q_heads, kvh = h / group;
      const int32_t* table =
          batch.block_tables + int64_t(batch.token_seq[t]) * batch.max_blocks_per_seq;
      const int64_t len = int64_t(batch.positions[t]) + 1;
      const float* qv = q + (t * q_heads + h) * head_dim;
      scores.resize(size_t(len));
      float mx = -INFINITY;
      for (int64_t p = 0; p < len; ++p) {
        const int64_t slot = int64_t(table[p / bs]) * bs + p % bs;
        const float* kr =
            kv_row(cache.k, cache.dtype, cache.k_scale, slot, kv_dim, kvh, head_dim, row.data());
        scores[p] = dot(qv, kr, head_dim) * scale;
        mx = std::max(mx, scores[p]);
      }
      double sum = 0;
      for (int64_t p = 0; p < len; ++p) {
        scores[p] = std::exp(scores[p] - mx);
        sum += scores[p];
      }
      float* o = out + (t * q_heads + h) * head_dim;
      std::fill(o, o + head_dim, 0.0f);
      const float inv = float(1.0 / sum);
      for (int64_t p = 0; p < len; ++p) {
        const int64_t slot = int64_t(table[p / bs]) * bs + p % bs;
        const float* vr =
            kv_row(cache.v, cache.dtype, cache.v_scale, slot, kv_dim, kvh, head_dim, row.data());
        axpy(o, scores[p] * inv, vr, head_dim);
      }
    }
  }
}

}  // namespace qwen3moe::cpu
