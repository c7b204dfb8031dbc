// The MoE routing on the device: moe_align sorts router_topk's (token, expert) pairs by expert
// (counting sort, ascending tokens inside an expert, so every run gives the same order and the
// same sums), moe_combine folds each token's expert outputs back into it as a gather.
//
// moe_align works on chunks of kChunk tokens with one thread per expert: thread e scans the
// chunk's pairs in token order, so its count and its placements need no atomics and come out
// in token order. Decode (one chunk) is one launch: count, scan, place in one block. Prefill
// is three: count per chunk, one block scans chunks and experts, place per chunk.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe::cuda {
namespace {

constexpr int kChunk = 64;                      // tokens per chunk
constexpr int kMaxExperts = 1024;               // one thread per expert in a block
constexpr int kMaxPairsPerChunk = kChunk * 32;  // k <= 32

int threads_for(int64_t experts) {
  return int((experts + 31) / 32 * 32);
}

// Pairs of chunk c staged in shared memory: [n] ids, n = chunk tokens * k.
__device__ int stage_chunk(int32_t* s_ids, const int32_t* ids, int64_t tokens, int64_t k,
                           int64_t c) {
  const int64_t t0 = c * kChunk, t1 = min(tokens, t0 + kChunk);
  const int n = int((t1 - t0) * k);
  for (int i = threadIdx.x; i < n; i += blockDim.x) s_ids[i] = ids[t0 * k + i];
  return n;
}

__device__ int count_expert(const int32_t* s_ids, int n, int e) {
  int c = 0;
  for (int i = 0; i < n; ++i) c += s_ids[i] == e;
  return c;
}

// Thread e writes its pairs of the chunk from position pos on, in token order; pairs with an
// id outside [0, E) get pair_index -1 (written by whichever thread owns index i).
__device__ void place_expert(const int32_t* s_ids, int n, int e, int64_t experts, int32_t pos,
                             int64_t pair0, int64_t k, int32_t* pair_token, int32_t* pair_index) {
  if (e < experts) {
    for (int i = 0; i < n; ++i) {
      if (s_ids[i] != e) continue;
      pair_token[pos] = int32_t((pair0 + i) / k);
      pair_index[pair0 + i] = pos;
      ++pos;
    }
  }
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    if (s_ids[i] < 0 || s_ids[i] >= experts) pair_index[pair0 + i] = -1;
}

// Exclusive block scan of (a, b) over blockDim threads (Hillis-Steele; blockDim <= 1024).
__device__ int2 block_exclusive_scan(int2 v, int2* buf) {
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int d = 1; d < int(blockDim.x); d *= 2) {
    int2 add = make_int2(0, 0);
    if (int(threadIdx.x) >= d) add = buf[threadIdx.x - d];
    __syncthreads();
    buf[threadIdx.x].x += add.x;
    buf[threadIdx.x].y += add.y;
    __syncthreads();
  }
  const int2 incl = buf[threadIdx.x];
  __syncthreads();
  return make_int2(incl.x - v.x, incl.y - v.y);
}

// From each expert's pair count: offsets, the active list, and the tail of pair_token.
__device__ void write_offsets(int count, int64_t experts, int64_t total_pairs, int2* buf,
                              int32_t* offsets, int32_t* active, int32_t* pair_token,
                              int32_t* my_offset) {
  const int e = threadIdx.x;
  const int2 ex = block_exclusive_scan(make_int2(count, count > 0 ? 1 : 0), buf);
  if (e < experts) {
    offsets[e] = ex.x;
    active[e] = -1;
  }
  __syncthreads();  // the -1s before the active entries that overwrite them
  if (e < experts && count > 0) active[ex.y] = e;
  if (e == int(blockDim.x) - 1) {
    offsets[experts] = ex.x + count;
    buf[0].x = ex.x + count;
  }
  *my_offset = ex.x;
  __syncthreads();
  for (int64_t p = buf[0].x + threadIdx.x; p < total_pairs; p += blockDim.x) pair_token[p] = 0;
}

// Decode: every token in one chunk, one block.
__global__ void align_one_chunk_kernel(int32_t* offsets, int32_t* pair_token, int32_t* pair_index,
                                       int32_t* active, const int32_t* ids, int64_t tokens,
                                       int64_t k, int64_t experts) {
  __shared__ int32_t s_ids[kMaxPairsPerChunk];
  __shared__ int2 buf[kMaxExperts];
  const int n = stage_chunk(s_ids, ids, tokens, k, 0);
  __syncthreads();
  const int e = threadIdx.x;
  const int count = e < experts ? count_expert(s_ids, n, e) : 0;
  int32_t pos = 0;
  write_offsets(count, experts, tokens * k, buf, offsets, active, pair_token, &pos);
  place_expert(s_ids, n, e, experts, pos, 0, k, pair_token, pair_index);
}

// Prefill, 1 of 3: counts[c, e] = pairs of expert e in chunk c.
__global__ void align_count_kernel(int32_t* counts, const int32_t* ids, int64_t tokens, int64_t k,
                                   int64_t experts) {
  __shared__ int32_t s_ids[kMaxPairsPerChunk];
  const int n = stage_chunk(s_ids, ids, tokens, k, blockIdx.x);
  __syncthreads();
  const int e = threadIdx.x;
  if (e < experts) counts[blockIdx.x * experts + e] = count_expert(s_ids, n, e);
}

// 2 of 3 (one block): counts become each chunk's start inside its expert; offsets, active.
__global__ void align_scan_kernel(int32_t* counts, int32_t* offsets, int32_t* active,
                                  int32_t* pair_token, int64_t chunks, int64_t tokens, int64_t k,
                                  int64_t experts) {
  __shared__ int2 buf[kMaxExperts];
  const int e = threadIdx.x;
  int total = 0;
  if (e < experts)
    for (int64_t c = 0; c < chunks; ++c) {
      const int v = counts[c * experts + e];
      counts[c * experts + e] = total;
      total += v;
    }
  int32_t pos = 0;
  write_offsets(total, experts, tokens * k, buf, offsets, active, pair_token, &pos);
  if (e < experts)
    for (int64_t c = 0; c < chunks; ++c) counts[c * experts + e] += pos;
}

// 3 of 3: every chunk places its pairs from the positions the scan gave it.
__global__ void align_place_kernel(int32_t* pair_token, int32_t* pair_index, const int32_t* starts,
                                   const int32_t* ids, int64_t tokens, int64_t k, int64_t experts) {
  __shared__ int32_t s_ids[kMaxPairsPerChunk];
  const int n = stage_chunk(s_ids, ids, tokens, k, blockIdx.x);
  __syncthreads();
  const int e = threadIdx.x;
  const int32_t pos = e < experts ? starts[blockIdx.x * experts + e] : 0;
  place_expert(s_ids, n, e, experts, pos, int64_t(blockIdx.x) * kChunk * k, k, pair_token,
               pair_index);
}

// One block per token, threads over the hidden dimension; the k terms in order j = 0..k-1.
__global__ void combine_kernel(float* out, const float* in, const int32_t* pair_index,
                               const float* weights, int64_t k, int64_t dim, bool accumulate) {
  const int64_t t = blockIdx.x;
  float* o = out + t * dim;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    // Written, not added: start from -0 (-0 + x is x to the bit, sign of zero included, as the
    // CPU twin's assignment of the first term), and +0 for a token without pairs.
    float acc = accumulate ? o[d] : -0.0f;
    bool any = accumulate;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t p = pair_index[t * k + j];
      if (p < 0) continue;
      acc += (weights ? weights[t * k + j] : 1.0f) * in[int64_t(p) * dim + d];
      any = true;
    }
    o[d] = any ? acc : 0.0f;
  }
}

}  // namespace

size_t moe_align_workspace_bytes(int64_t tokens, int64_t experts) {
  const int64_t chunks = (tokens + kChunk - 1) / kChunk;
  return chunks <= 1 ? 0 : size_t(chunks * experts) * sizeof(int32_t);
}

void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index, int32_t* active,
               const int32_t* ids, int64_t tokens, int64_t k, int64_t experts, void* workspace,
               cudaStream_t stream) {
  QWEN3MOE_CHECK(experts > 0 && experts <= kMaxExperts, "moe_align: ", experts,
                 " experts; the CUDA kernel takes 1 to ", kMaxExperts);
  QWEN3MOE_CHECK(k > 0 && k <= kMaxPairsPerChunk / kChunk, "moe_align: k=", k,
                 " outside the CUDA kernel's 1..", kMaxPairsPerChunk / kChunk);
  const int threads = threads_for(experts);
  const int64_t chunks = (tokens + kChunk - 1) / kChunk;
  if (chunks <= 1) {
    align_one_chunk_kernel<<<1, threads, 0, stream>>>(offsets, pair_token, pair_index, active, ids,
                                                      tokens, k, experts);
    QWEN3MOE_CUDA_LAUNCHED();
    return;
  }
  QWEN3MOE_CHECK(workspace != nullptr, "moe_align: ", tokens, " tokens need a workspace of ",
                 moe_align_workspace_bytes(tokens, experts), " bytes");
  auto* counts = static_cast<int32_t*>(workspace);  // [chunks, E]
  align_count_kernel<<<int(chunks), threads, 0, stream>>>(counts, ids, tokens, k, experts);
  QWEN3MOE_CUDA_LAUNCHED();
  align_scan_kernel<<<1, threads, 0, stream>>>(counts, offsets, active, pair_token, chunks, tokens,
                                               k, experts);
  QWEN3MOE_CUDA_LAUNCHED();
  align_place_kernel<<<int(chunks), threads, 0, stream>>>(pair_token, pair_index, counts, ids,
                                                          tokens, k, experts);
  QWEN3MOE_CUDA_LAUNCHED();
}

void moe_combine(float* out, const float* in, const int32_t* pair_index, const float* weights,
                 int64_t tokens, int64_t k, int64_t dim, bool accumulate, cudaStream_t stream) {
  if (tokens == 0 || dim == 0) return;
  combine_kernel<<<int(tokens), 256, 0, stream>>>(out, in, pair_index, weights, k, dim, accumulate);
  QWEN3MOE_CUDA_LAUNCHED();
}

}  // namespace qwen3moe::cuda
