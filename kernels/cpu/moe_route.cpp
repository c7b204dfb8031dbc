// The MoE routing on the CPU, twin of kernels/cuda/moe_route.cu and its reference: moe_align
// sorts the router's (token, expert) pairs by expert (a stable counting sort, so pairs stay in
// token order inside an expert), moe_combine folds each token's expert outputs back into it.
#include <cstring>
#include <vector>

#include "kernels/cpu/ops.h"

namespace qwen3moe::cpu {

void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index, int32_t* active,
               const int32_t* ids, int64_t tokens, int64_t k, int64_t experts) {
  // Counting sort by expert, stable in token order: pairs visited token-major land in
  // ascending token order inside each expert.
  std::vector<int32_t> next(static_cast<size_t>(experts + 1), 0);
  for (int64_t i = 0; i < tokens * k; ++i)
    if (ids[i] >= 0 && ids[i] < experts) ++next[size_t(ids[i]) + 1];
  for (int64_t e = 0; e < experts; ++e) next[size_t(e + 1)] += next[size_t(e)];
  std::memcpy(offsets, next.data(), sizeof(int32_t) * size_t(experts + 1));
  int64_t n_active = 0;
  for (int64_t e = 0; e < experts; ++e)
    if (offsets[e + 1] > offsets[e]) active[n_active++] = int32_t(e);
  for (int64_t e = n_active; e < experts; ++e) active[e] = -1;
  for (int64_t i = 0; i < tokens * k; ++i) {
    pair_index[i] = -1;
    if (ids[i] < 0 || ids[i] >= experts) continue;
    const int32_t pos = next[size_t(ids[i])]++;
    pair_token[pos] = int32_t(i / k);
    pair_index[i] = pos;
  }
  // Slots past the last pair (ids out of range) name token 0, so a gather over all T*k rows
  // reads valid memory.
  for (int64_t p = offsets[experts]; p < tokens * k; ++p) pair_token[p] = 0;
}

void moe_combine(float* out, const float* in, const int32_t* pair_index, const float* weights,
                 int64_t tokens, int64_t k, int64_t dim, bool accumulate) {
#pragma omp parallel for schedule(static) if (tokens * k * dim > 65536)
  for (int64_t t = 0; t < tokens; ++t) {
    float* o = out + t * dim;
    bool assign = !accumulate;  // the first term is written, not added (0 + x is x)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t p = pair_index[t * k + j];
      if (p < 0) continue;
      const float s = weights ? weights[t * k + j] : 1.0f;
      const float* r = in + int64_t(p) * dim;
      if (assign)
        for (int64_t d = 0; d < dim; ++d) o[d] = s * r[d];
      else
        for (int64_t d = 0; d < dim; ++d) o[d] += s * r[d];
      assign = false;
    }
    if (assign)
      for (int64_t d = 0; d < dim; ++d) o[d] = 0.0f;
  }
}

}  // namespace qwen3moe::cpu
