// The Backend: the math ops of one forward pass, on the backend's own memory. The model calls
// only these; kernels/cpu implements them on host memory (threaded, AVX2), kernels/cuda on
// device memory with one stream. Activations are f32; weights stay in their stored dtype.
#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "kernels/common/dtype.h"

struct CUstream_st;  // cudaStream_t is CUstream_st*; declared here to keep CUDA headers out

namespace qwen3moe {

// A 2-D weight matrix [rows, cols] with row stride `ld` (elements), in backend memory. A
// column slice of a larger matrix (a TP shard of o_proj) is the same data with a larger ld.
struct Weight {
  const void* data = nullptr;
  DType dtype = DType::BF16;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;
  // F8E4M3 only, as block-scaled checkpoints store it (weight_scale_inv [ceil(R / block_rows),
  // scale_ld] of the whole tensor): element (r, c) of this matrix, a slice starting at
  // (scale_row0, scale_col0) of the tensor, is its fp8 value times
  // scale[((r + scale_row0) / block_rows) * scale_ld + (c + scale_col0) / block_cols], so a
  // tensor-parallel slice may start inside a block (scale_col0 a multiple of 8).
  const float* scale = nullptr;
  int64_t block_rows = 0, block_cols = 0, scale_ld = 0, scale_row0 = 0, scale_col0 = 0;
  float scale_at(int64_t r, int64_t c) const {
    return scale[((r + scale_row0) / block_rows) * scale_ld + (c + scale_col0) / block_cols];
  }
  int64_t scale_blocks() const {
    return scale ? (rows + block_rows - 1) / block_rows * ((cols + block_cols - 1) / block_cols)
                 : 0;
  }
  size_t bytes() const {
    return size_t(rows) * size_t(cols) * dtype_size(dtype) + size_t(scale_blocks()) * 4;
  }
};

// The experts of one MoE layer for one projection, as a device kernel sees them: a table of
// num_experts pointers, itself in backend memory, to [rows, cols] matrices (ld = cols) of one
// dtype. A table rather than one base and a stride: experts are mapped one by one from the
// checkpoint, each its own allocation.
struct ExpertWeights {
  const void* const* table = nullptr;  // [E] backend memory
  DType dtype = DType::BF16;
  int64_t rows = 0;
  int64_t cols = 0;
  // F8E4M3: [E] each expert's block scales (Weight::scale with scale_ld = ceil(cols / block_cols))
  const float* const* scales = nullptr;
  int64_t block_rows = 0, block_cols = 0;
};

// One layer's paged KV cache as the kernels write and read it: K and V [slots, kv_dim] in
// `dtype`, f32, bf16, or F8E4M3 holding value / scale[kv head] (vLLM's fp8 KV cache; the
// scales [kv_dim / head_dim] in backend memory). Attention always accumulates in f32.
struct KvCacheView {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::F32;
  const float* k_scale = nullptr;  // F8E4M3 only
  const float* v_scale = nullptr;
};

// Which cache slots each query token may see: token t of sequence s = token_seq[t] attends to
// positions 0..positions[t] of s, read through s's block table.
struct AttentionBatch {
  int num_tokens = 0;
  const int32_t* positions = nullptr;     // [T]
  const int32_t* token_seq = nullptr;     // [T]
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  int block_size = 0;
};

// The arguments of Backend::moe_dispatch_pack, all backend memory. W ranks, T tokens.
// The KV slot of a token that pads a step to a graph's batch size: kv_cache_write skips it.
// A value nothing else produces, so a real token given a negative slot by mistake still fails.
inline constexpr int32_t kPaddingSlot = INT32_MIN;

struct MoeDispatchPack {
  const int32_t* ids = nullptr;    // [T, k] the router's global expert ids
  const float* weights = nullptr;  // [T, k] their weights
  const int32_t* owner = nullptr;  // [E] rank of each expert
  const int32_t* local = nullptr;  // [E] index of each expert on its rank
  // [4, W] per rank p: [0] first row of p's block in the dispatch buffer (< T: p's rows are
  // the input rows [first, first + rows) sent in place, unrouted ones as idle rows; >= T: its
  // routed tokens packed from that row on, in token order); [1] rows of the block; [2] the
  // block's first row in the send meta; [3] the first row of the partial buffer its rows come
  // back to in combine. This rank's own entries: [1] = T, the rest unused.
  const int32_t* plan = nullptr;
  int32_t* pack_src = nullptr;  // [packed] input row each packed row copies (rows T + i)
  // [T, W] partial row to add per token and peer, -1: none (always for the own rank: its
  // experts add into the residual themselves)
  int32_t* combine_rows = nullptr;
  // [2 * sent rows * k] 32-bit words, one block per peer so that a row block and its meta
  // travel in one exchange each: peer p's block starts at word 2k * plan[2][p] and holds its
  // rows' destination-local ids (-1: elsewhere or idle), then their weights (float bits).
  int32_t* send_meta = nullptr;
  int32_t* own_ids = nullptr;    // [T + packed, k] own rows' local ids; packed rows all -1
  float* own_weights = nullptr;  // [T, k]
  int64_t tokens = 0, k = 0, experts = 0, world = 1, rank = 0;
  int64_t packed = 0;  // rows packed for peers, after the T input rows
  // > 0: the fixed-capacity exchange. Every peer's block is the input rows [0, capacity) in
  // place (capacity >= T; plan [0] and [1] unused), rows [T, capacity) idle (ids -1, weights
  // 0), so the blocks have a size the receivers know without a count exchange.
  int64_t capacity = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory. Host pointers in and out of upload/download; everything else is backend memory.
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* ptr) = 0;
  virtual void upload(void* dst, const void* src, size_t bytes) = 0;
  virtual void download(void* dst, const void* src, size_t bytes) = 0;
  // A weight that lives in host memory (an mmapped file) made visible to the backend. The CPU
  // backend returns it as it is (zero copy); the CUDA one copies it to the device (compacting
  // a column slice to ld = cols).
  virtual Weight map_weight(const Weight& host) = 0;
  virtual void zero(void* ptr, size_t bytes) = 0;
  // dst[bytes] = src[bytes], both backend memory (ranges may overlap): the collectives of a
  // one-rank world on backend memory (parallel/local_device_communicator).
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // The memory this backend allocates from, free and in all: the GPU's (cudaMemGetInfo), or
  // the host's available and physical memory for the CPU backend.
  struct MemoryInfo {
    size_t free = 0, total = 0;
  };
  virtual MemoryInfo memory_info() const = 0;
  // Marks on the backend's own timeline, for profiling without a wait per measured span:
  // timestamp() queues a mark after the work queued so far and returns its id;
  // elapsed_us(from, to) is the time between two marks, waiting for `to` to pass;
  // clear_timestamps() recycles every mark. The CPU backend runs each op when it is issued, so
  // its marks are the host clock; CUDA's are events on the stream.
  virtual int64_t timestamp() = 0;
  virtual double elapsed_us(int64_t from, int64_t to) = 0;
  virtual void clear_timestamps() = 0;
  // Host memory that upload/download move fastest (page-locked on CUDA, which lets the copy
  // engine read it directly): the staging buffers of parallel/host_staged_communicator.
  // Plain heap memory by default.
  virtual void* alloc_host(size_t bytes) { return ::operator new(bytes); }
  virtual void free_host(void* ptr) { ::operator delete(ptr); }

  // y[M,N] = x[M,K] · w[N,K]^T (+ bias[N] when given, f32). f32 accumulation.
  virtual void matmul(float* y, const float* x, const Weight& w, int64_t m,
                      const float* bias = nullptr) = 0;
  // y[r] = w * x[r] / sqrt(mean(x[r]^2) + eps) for each of `rows` rows of `dim`; w is f32.
  virtual void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim,
                       float eps) = 0;
  // Rotate-half RoPE in place on x[T, heads, head_dim] at positions[T]: pair (i, i + d/2)
  // turns by the f32 angle pos * inv_freq[i] (inv_freq [head_dim/2], backend memory), with cos
  // and sin multiplied by `scale` (1, or YaRN's attention factor).
  virtual void rope(float* x, const int32_t* positions, int64_t tokens, int64_t heads,
                    int64_t head_dim, const float* inv_freq, float scale) = 0;
  // k, v: [T, kv_heads*head_dim] f32 written to the cache at slots[T] (slot = block*bs +
  // offset; kPaddingSlot: a padding token of a graph bucket, not written), rounded to the
  // cache's dtype (nearest even; fp8 divided by its head's scale, saturating at 448).
  // Cache: [num_blocks*block_size, kv_heads*head_dim].
  virtual void kv_cache_write(const KvCacheView& cache, const float* k, const float* v,
                              const int32_t* slots, int64_t tokens, int64_t kv_dim,
                              int64_t head_dim) = 0;
  // out[T, q_heads, head_dim] = causal softmax(q k^T * scale) v over the paged cache; GQA maps
  // q head h to kv head h / (q_heads / kv_heads).
  virtual void attention(float* out, const float* q, const KvCacheView& cache,
                         const AttentionBatch& batch, int64_t q_heads, int64_t kv_heads,
                         int64_t head_dim, float scale) = 0;
  // out[rows, dim] = silu(gate) * up, all three [rows, dim].
  virtual void silu_mul(float* out, const float* gate, const float* up, int64_t rows,
                        int64_t dim) = 0;
  // Router: softmax over logits[T, E] in f32, top-k (ties to the lower expert id), weights
  // renormalised to sum 1 iff normalize. ids[T, k], weights[T, k].
  virtual void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens,
                           int64_t experts, int64_t k, bool normalize) = 0;
  // out[t] = table[ids[t] - row_offset] for ids inside [row_offset, row_offset + table.rows),
  // zeros otherwise (a vocabulary-parallel slice).
  virtual void embedding(float* out, const Weight& table, const int32_t* ids, int64_t tokens,
                         int64_t row_offset) = 0;
  // out[i] = in[idx[i]] for rows of `dim` (the MoE pairs' rows, the packed dispatch rows).
  virtual void gather_rows(float* out, const float* in, const int32_t* idx, int64_t n,
                           int64_t dim) = 0;
  // The all-to-all's bf16 payload (--a2a-dtype bf16): out[i] = bf16(in[idx ? idx[i] : i]) for
  // rows of `dim` (round to nearest even, as torch), and back: out[i] = f32(in[i]) (exact).
  virtual void rows_to_bf16(uint16_t* out, const float* in, const int32_t* idx, int64_t n,
                            int64_t dim) = 0;
  virtual void rows_to_f32(float* out, const uint16_t* in, int64_t n, int64_t dim) = 0;
  // y[n] += x[n]
  virtual void add(float* y, const float* x, int64_t n) = 0;

  // The device-resident MoE (no host round trip, so a decode step can be one CUDA graph).
  // moe_align: router_topk's ids[T, k] as T*k (token, expert) pairs sorted by expert, ascending
  // tokens within an expert (deterministic). offsets[E+1]: expert e's pairs are
  // [offsets[e], offsets[e+1]); pair_token[T*k]: each sorted pair's token; pair_index[T*k]:
  // where pair (t, j) went; active[E]: the experts with pairs, ascending, then -1s. Ids outside
  // [0, E) form no pair (their pair_index is -1). All outputs int32 in backend memory.
  virtual void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index,
                         int32_t* active, const int32_t* ids, int64_t tokens, int64_t k,
                         int64_t experts) = 0;
  // Grouped GEMM over the sorted pairs, offsets and active from moe_align (backend memory):
  // y[offsets[e]:offsets[e+1]] = x[offsets[e]:offsets[e+1]] · w[e]^T, all experts in one call.
  // rows = T*k and tokens = T (no expert has more than T rows), both known on the host, size
  // the launch without reading offsets; rows past offsets[E] (dropped ids) are left alone.
  virtual void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                          const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) = 0;
  // act[rows, I] = silu(x · gate[e]^T) * (x · up[e]^T) over the sorted pairs: moe_matmul of
  // gate and up and silu_mul as one op, so decode streams both projections in one launch.
  // gate_out and up_out [rows, I] are scratch the backend may use (prefill, the CPU).
  virtual void moe_swiglu(float* act, float* gate_out, float* up_out, const float* x,
                          const ExpertWeights& gate, const ExpertWeights& up,
                          const int32_t* offsets, const int32_t* active, int64_t experts,
                          int64_t rows, int64_t tokens) = 0;
  // out[t] += sum_j weights[t, j] * in[pair_index[t, j]] for rows of `dim` (skipping index -1):
  // the weighted sum of each token's expert outputs, as a gather (deterministic, no atomics).
  // weights null: all 1 (the sum of the rows the ranks return in combine). accumulate false:
  // out[t] = the sum (0 for a token without pairs), no read of out: the expert outputs of a
  // dispatch's rows need no zeroed buffer.
  virtual void moe_combine(float* out, const float* in, const int32_t* pair_index,
                           const float* weights, int64_t tokens, int64_t k, int64_t dim,
                           bool accumulate = true) = 0;
  // Expert parallelism: the index work of one dispatch, all on the backend (the host reads only
  // the counts). expert_owner[E] is the rank each expert lives on, expert_local[E] its index
  // there; a token goes to rank p once when any of its k experts lives on p. Ids outside [0, E)
  // go nowhere. stats[3, W] (int32): per rank the tokens routed to it, the first of them
  // (`tokens` when none) and the last (-1 when none).
  virtual void moe_dispatch_count(int32_t* stats, const int32_t* ids, const int32_t* expert_owner,
                                  int64_t tokens, int64_t k, int64_t experts, int64_t world) = 0;
  // The rest, from the plan the host made of those counts (MoeDispatchPack says what each
  // array holds): the input rows to pack, each sent row's experts and weights, this rank's own
  // rows' experts and weights, and where combine finds each token's returned rows.
  virtual void moe_dispatch_pack(const MoeDispatchPack& args) = 0;
  // dst[n] (bf16, f32, or e4m3 codes saturating at 448) = mean + std * u_i, u_i uniform in
  // [-sqrt3, sqrt3) from a hash of (seed, i): random weights made where they live (a 60 GB
  // model needs no file, no host copy). Bit-identical on every backend.
  virtual void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean,
                           float std) = 0;

  // Graphs: the ops issued between begin_capture() and end_capture() are recorded, not run;
  // replay(g) runs them again, same pointers and sizes (a decode step as one launch, not
  // hundreds). Only ops that neither allocate nor wait for the host may be captured (no
  // upload/download, no workspace growth). A backend without graphs returns false from
  // begin_capture and the caller runs the ops itself.
  virtual bool has_graphs() const { return false; }
  virtual bool begin_capture() { return false; }
  virtual int end_capture() { return -1; }
  virtual void replay(int graph) { (void)graph; }
  // Destroys a captured graph; its id is not valid afterwards.
  virtual void release_graph(int graph) { (void)graph; }
};

std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

#ifdef QWEN3MOE_HAVE_CUDA
// The CUDA backend on `device` (kernels/cuda). Error when the device does not exist.
std::unique_ptr<Backend> make_cuda_backend(int device = 0);
// GPUs this process can see (0 without a driver or a GPU): GPU tests skip on 0.
int cuda_device_count();
// The stream every op of a CUDA backend runs on, so that a communicator on device memory
// (parallel/nccl) orders its transfers after the ops that wrote the buffers. Error when
// `backend` is not a CUDA backend.
CUstream_st* cuda_stream(Backend& backend);
#endif

}  // namespace qwen3moe
