// The index work of an expert-parallel dispatch on the device, twin of kernels/cpu/moe_dispatch.cpp
// (the reference: same outputs to the bit, they are integers and copies).
//
// moe_dispatch_count is one block: each thread takes tokens, finds the ranks of its k experts
// (a rank counts once per token) and updates that rank's count, first and last token with
// shared-memory atomics; the results do not depend on the order.
// moe_dispatch_pack gives each peer rank one warp that walks the tokens 32 at a time in token
// order: the ballot of routed lanes and a popcount give every packed token its slot without a
// scan pass. The own rank's meta is one thread per (token, expert).
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kMaxWorld = 1024;  // shared counters of moe_dispatch_count

__device__ bool routed_to(const int32_t* ids, const int32_t* owner, int64_t t, int64_t k,
                          int64_t experts, int64_t p) {
  for (int64_t j = 0; j < k; ++j) {
    const int32_t e = ids[t * k + j];
    if (e >= 0 && e < experts && owner[e] == p) return true;
  }
  return false;
}

__device__ void put_meta(int32_t* out_ids, float* out_w, const int32_t* ids, const float* weights,
                         const int32_t* owner, const int32_t* local, int64_t t, int64_t k,
                         int64_t experts, int64_t p) {
  for (int64_t j = 0; j < k; ++j) {
    const int32_t e = ids[t * k + j];
    const bool here = e >= 0 && e < experts && owner[e] == p;
    out_ids[j] = here ? local[e] : -1;
    out_w[j] = weights[t * k + j];
  }
}

__global__ void count_kernel(int32_t* stats, const int32_t* ids, const int32_t* owner,
                             int64_t tokens, int64_t k, int64_t experts, int64_t world) {
  __shared__ int s_count[kMaxWorld], s_first[kMaxWorld], s_last[kMaxWorld];
  for (int64_t p = threadIdx.x; p < world; p += blockDim.x) {
    s_count[p] = 0;
    s_first[p] = int(tokens);
    s_last[p] = -1;
  }
  __syncthreads();
  for (int64_t t = threadIdx.x; t < tokens; t += blockDim.x)
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = ids[t * k + j];
      if (e < 0 || e >= experts) continue;
      const int p = owner[e];
      if (p < 0 || p >= world) continue;  // as the CPU twin: no rank, no count
      bool seen = false;                  // an earlier expert of this token on the same rank
      for (int64_t i = 0; i < j; ++i) {
        const int32_t f = ids[t * k + i];
        seen |= f >= 0 && f < experts && owner[f] == p;
      }
      if (seen) continue;
      atomicAdd(&s_count[p], 1);
      atomicMin(&s_first[p], int(t));
      atomicMax(&s_last[p], int(t));
    }
  __syncthreads();
  for (int64_t p = threadIdx.x; p < world; p += blockDim.x) {
    stats[p] = s_count[p];
    stats[world + p] = s_first[p];
    stats[2 * world + p] = s_last[p];
  }
}

// One warp per peer rank p (blockIdx.x = p; the own rank's warp returns at once).
__global__ void pack_peer_kernel(MoeDispatchPack a) {
  const int64_t p = blockIdx.x, T = a.tokens, k = a.k, W = a.world, E = a.experts;
  if (p == a.rank) return;
  const int lane = threadIdx.x;
  const bool fixed = a.capacity > 0;
  const int64_t first = fixed ? 0 : a.plan[p], rows = fixed ? a.capacity : a.plan[W + p];
  const int32_t meta_row = a.plan[2 * W + p], back_row = a.plan[3 * W + p];
  const bool in_place = fixed || first < T;
  int32_t* block = a.send_meta + 2 * k * meta_row;
  int64_t slot_base = 0;  // packed: routed tokens before this group of 32
  for (int64_t t0 = 0; t0 < T; t0 += 32) {
    const int64_t t = t0 + lane;
    const bool live = t < T;
    const bool routed = live && routed_to(a.ids, a.owner, t, k, E, p);
    const unsigned mask = __ballot_sync(0xffffffffu, routed);
    int64_t slot = -1;
    if (in_place) {
      if (live && t >= first && t < first + rows) slot = t - first;
    } else if (routed) {
      slot = slot_base + __popc(mask & ((1u << lane) - 1u));
    }
    if (slot >= 0) {
      put_meta(block + slot * k, reinterpret_cast<float*>(block + (rows + slot) * k), a.ids,
               a.weights, a.owner, a.local, t, k, E, p);
      if (!in_place) a.pack_src[first - T + slot] = int32_t(t);
    }
    if (live) a.combine_rows[t * W + p] = routed ? int32_t(back_row + slot) : -1;
    slot_base += __popc(mask);
  }
  // A fixed-capacity block's rows past the tokens travel as idle rows.
  if (in_place)
    for (int64_t i = (T > first ? T - first : 0) * k + lane; i < rows * k; i += 32) {
      block[i] = -1;
      reinterpret_cast<float*>(block + rows * k)[i] = 0.0f;
    }
}

// One thread per own (token, expert) slot and per packed-row slot.
__global__ void pack_own_kernel(MoeDispatchPack a) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t T = a.tokens, k = a.k, W = a.world, E = a.experts, p = a.rank;
  if (i < T * k) {
    const int64_t t = i / k, j = i % k;
    const int32_t e = a.ids[i];
    const bool here = e >= 0 && e < E && a.owner[e] == p;
    a.own_ids[i] = here ? a.local[e] : -1;
    a.own_weights[i] = a.weights[i];
    if (j == 0) a.combine_rows[t * W + p] = -1;  // the own experts add into the residual
  } else if (i < (T + a.packed) * k) {
    a.own_ids[i] = -1;  // packed rows are copies for the peers
  }
}

}  // namespace

void moe_dispatch_count(int32_t* stats, const int32_t* ids, const int32_t* owner, int64_t tokens,
                        int64_t k, int64_t experts, int64_t world, cudaStream_t stream) {
  QWEN3MOE_CHECK(world >= 1 && world <= kMaxWorld, "moe_dispatch_count: world ", world,
                 " outside 1..", kMaxWorld);
  count_kernel<<<1, 256, 0, stream>>>(stats, ids, owner, tokens, k, experts, world);
  QWEN3MOE_CUDA_LAUNCHED();
}

void moe_dispatch_pack(const MoeDispatchPack& args, cudaStream_t stream) {
  QWEN3MOE_CHECK(args.capacity == 0 || args.capacity >= args.tokens,
                 "moe_dispatch_pack: ", args.tokens, " tokens exceed the fixed capacity of ",
                 args.capacity);
  const int64_t own = (args.tokens + args.packed) * args.k;
  if (own > 0) {
    pack_own_kernel<<<int((own + 255) / 256), 256, 0, stream>>>(args);
    QWEN3MOE_CUDA_LAUNCHED();
  }
  if (args.world > 1 && (args.tokens > 0 || args.capacity > 0)) {
    pack_peer_kernel<<<int(args.world), 32, 0, stream>>>(args);
    QWEN3MOE_CUDA_LAUNCHED();
  }
}

}  // namespace qwen3moe::cuda
