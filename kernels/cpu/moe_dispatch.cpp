// The index work of an expert-parallel dispatch on the CPU, twin of kernels/cuda/moe_dispatch.cu
// and its reference: moe_dispatch_count (which ranks each token goes to: the few ints the host
// plans the exchange with) and moe_dispatch_pack (given that plan: the rows to pack, each sent
// row's expert ids and weights, and where combine finds each token's returned rows).

#include <algorithm>
#include <cstring>

#include "kernels/common/check.h"
#include "kernels/cpu/ops.h"

namespace qwen3moe::cpu {
namespace {

// Whether token t has an expert on rank p (ids outside [0, experts) go nowhere).
bool routed_to(const int32_t* ids, const int32_t* owner, int64_t t, int64_t k, int64_t experts,
               int64_t p) {
  for (int64_t j = 0; j < k; ++j) {
    const int32_t e = ids[t * k + j];
    if (e >= 0 && e < experts && owner[e] == p) return true;
  }
  return false;
}

// Row meta for rank p: each of token t's experts as p's local id (-1 when it lives elsewhere),
// and its weight.
void put_meta(int32_t* out_ids, float* out_w, const int32_t* ids, const float* weights,
              const int32_t* owner, const int32_t* local, int64_t t, int64_t k, int64_t experts,
              int64_t p) {
  for (int64_t j = 0; j < k; ++j) {
    const int32_t e = ids[t * k + j];
    const bool here = e >= 0 && e < experts && owner[e] == p;
    out_ids[j] = here ? local[e] : -1;
    out_w[j] = weights[t * k + j];
  }
}

}  // namespace

void moe_dispatch_count(int32_t* stats, const int32_t* ids, const int32_t* owner, int64_t tokens,
                        int64_t k, int64_t experts, int64_t world) {
  int32_t *count = stats, *first = stats + world, *last = stats + 2 * world;
  for (int64_t p = 0; p < world; ++p) {
    count[p] = 0;
    first[p] = int32_t(tokens);
    last[p] = -1;
  }
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t p = 0; p < world; ++p)
      if (routed_to(ids, owner, t, k, experts, p)) {
        ++count[p];
        if (first[p] > t) first[p] = int32_t(t);
        last[p] = int32_t(t);
      }
}

void moe_dispatch_pack(const MoeDispatchPack& a) {
  const int64_t T = a.tokens, k = a.k, W = a.world, E = a.experts;
  QWEN3MOE_CHECK(k >= 1 && k <= 64, "moe_dispatch_pack: top-", k, " outside 1..64");
  QWEN3MOE_CHECK(a.capacity == 0 || a.capacity >= T, "moe_dispatch_pack: ", T,
                 " tokens exceed the fixed capacity of ", a.capacity);
  const int32_t *first = a.plan, *rows_of = a.plan + W, *meta_row = a.plan + 2 * W,
                *back_row = a.plan + 3 * W;
  for (int64_t p = 0; p < W; ++p) {
    if (p == a.rank) {
      // The own rows: the input rows themselves, read by the local experts in place.
      for (int64_t t = 0; t < T; ++t) {
        put_meta(a.own_ids + t * k, a.own_weights + t * k, a.ids, a.weights, a.owner, a.local, t, k,
                 E, p);
        a.combine_rows[t * W + p] = -1;  // the own experts add into the residual directly
      }
      continue;
    }
    const bool fixed = a.capacity > 0;
    const int64_t begin = fixed ? 0 : first[p], rows = fixed ? a.capacity : rows_of[p];
    const bool in_place = fixed || begin < T;
    int32_t* block = a.send_meta + 2 * k * meta_row[p];
    int64_t packed_slot = 0;
    for (int64_t t = 0; t < T; ++t) {
      const bool routed = routed_to(a.ids, a.owner, t, k, E, p);
      int64_t slot = -1;
      if (in_place) {
        // The whole range travels: routed or idle, token t is row t - first of the block.
        if (t >= begin && t < begin + rows) slot = t - begin;
      } else if (routed) {
        slot = packed_slot++;
        a.pack_src[begin - T + slot] = int32_t(t);
      }
      if (slot >= 0) {
        float w[64];  // k <= 64 (router_topk's bound)
        put_meta(block + slot * k, w, a.ids, a.weights, a.owner, a.local, t, k, E, p);
        std::memcpy(block + (rows + slot) * k, w, sizeof(float) * size_t(k));
      }
      a.combine_rows[t * W + p] = routed ? int32_t(back_row[p] + slot) : -1;
    }
    // A fixed-capacity block's rows past the tokens travel as idle rows.
    if (in_place)
      for (int64_t slot = std::max<int64_t>(0, T - begin); slot < rows; ++slot)
        for (int64_t j = 0; j < k; ++j) {
          block[slot * k + j] = -1;
          const float zero = 0.0f;
          std::memcpy(block + (rows + slot) * k + j, &zero, sizeof(float));
        }
  }
  // The packed rows are copies for the peers: no local expert reads them.
  for (int64_t i = T * k; i < (T + a.packed) * k; ++i) a.own_ids[i] = -1;
}

}  // namespace qwen3moe::cpu
