// The CUDA Backend: device memory, one stream, one cuBLAS handle, and a GEMM workspace that
// grows to the largest step seen (during warm-up; a step of a size seen before allocates
// nothing). Weights are copied to the device once, a column slice compacted to ld = cols.
#include <algorithm>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace qwen3moe {
namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) {
    int count = 0;
    QWEN3MOE_CUDA_CHECK(cudaGetDeviceCount(&count));
    QWEN3MOE_CHECK(device >= 0 && device < count, "CUDA device ", device, " does not exist (",
                   count, " visible)");
    QWEN3MOE_CUDA_CHECK(cudaSetDevice(device));
    QWEN3MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    QWEN3MOE_CUBLAS_CHECK(cublasCreate(&blas_));
    QWEN3MOE_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    // cuBLAS's own scratch, fixed now, so a captured GEMM never asks for memory.
    QWEN3MOE_CUDA_CHECK(cudaMalloc(&blas_ws_, kBlasWorkspace));
    QWEN3MOE_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_, kBlasWorkspace));
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (void* p : weights_) cudaFree(p);
    if (ws_.ptr) cudaFree(ws_.ptr);
    if (align_ws_) cudaFree(align_ws_);
    for (cudaGraphExec_t g : graphs_)
      if (g) cudaGraphExecDestroy(g);
    for (cudaEvent_t e : marks_) cudaEventDestroy(e);
    for (void* p : retired_) cudaFree(p);
    cudaFree(blas_ws_);
    cublasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "cuda"; }

  void* alloc(size_t bytes) override {
    void* p = nullptr;
    QWEN3MOE_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 256)));
    return p;
  }
  void free(void* ptr) override { QWEN3MOE_CUDA_CHECK(cudaFree(ptr)); }
  // Pinned: the copy engine reads and writes it directly (no bounce through a driver buffer).
  void* alloc_host(size_t bytes) override {
    void* p = nullptr;
    QWEN3MOE_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(bytes, 1)));
    return p;
  }
  void free_host(void* ptr) override { QWEN3MOE_CUDA_CHECK(cudaFreeHost(ptr)); }
  cudaStream_t stream() const { return stream_; }
  // Host buffers may be reused as soon as these return, so both wait for the copy.
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    QWEN3MOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    QWEN3MOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  Weight map_weight(const Weight& host) override {
    const size_t esz = dtype_size(host.dtype), row = size_t(host.cols) * esz;
    void* dev = weight_alloc(row * size_t(host.rows));
    QWEN3MOE_CUDA_CHECK(cudaMemcpy2DAsync(dev, row, host.data, size_t(host.ld) * esz, row,
                                          size_t(host.rows), cudaMemcpyHostToDevice, stream_));
    QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    Weight w = host;
    w.data = dev;
    w.ld = host.cols;
    if (host.dtype == DType::F8E4M3) map_fp8_scales(w, host);
    return w;
  }
  void zero(void* ptr, size_t bytes) override {
    QWEN3MOE_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes && dst != src)
      QWEN3MOE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void synchronize() override { QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  MemoryInfo memory_info() const override {
    MemoryInfo m;
    QWEN3MOE_CUDA_CHECK(cudaMemGetInfo(&m.free, &m.total));
    return m;
  }
  // Events from a pool that only grows (creating one is not free): ids index it.
  int64_t timestamp() override {
    if (marks_used_ == marks_.size()) {
      cudaEvent_t e = nullptr;
      QWEN3MOE_CUDA_CHECK(cudaEventCreate(&e));
      marks_.push_back(e);
    }
    QWEN3MOE_CUDA_CHECK(cudaEventRecord(marks_[marks_used_], stream_));
    return int64_t(marks_used_++);
  }
  double elapsed_us(int64_t from, int64_t to) override {
    QWEN3MOE_CHECK(from >= 0 && to >= 0 && size_t(std::max(from, to)) < marks_used_,
                   "elapsed_us: marks ", from, " and ", to, " of ", marks_used_);
    QWEN3MOE_CUDA_CHECK(cudaEventSynchronize(marks_[size_t(to)]));
    float ms = 0;
    QWEN3MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, marks_[size_t(from)], marks_[size_t(to)]));
    return double(ms) * 1e3;
  }
  void clear_timestamps() override { marks_used_ = 0; }

  void matmul(float* y, const float* x, const Weight& w, int64_t m, const float* bias) override {
    // Few rows (decode): the weight-streaming kernel, no workspace, no split.
    if (cuda::gemv_applies(w, m)) return cuda::gemv(y, x, w, m, bias, stream_);
    // fp8 (moe_matmul.cu's kernels) needs no split buffer.
    if (w.dtype != DType::F8E4M3)
      reserve_workspace(cuda::matmul_workspace_bytes(m, w.rows, w.cols));
    cuda::matmul(y, x, w, m, bias, ws_, blas_, stream_);
  }
  void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim,
               float eps) override {
    cuda::rmsnorm(y, x, w, rows, dim, eps, stream_);
  }
  void rope(float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
            const float* inv_freq, float scale) override {
    cuda::rope(x, positions, tokens, heads, head_dim, inv_freq, scale, stream_);
  }
  void kv_cache_write(const KvCacheView& cache, const float* k, const float* v,
                      const int32_t* slots, int64_t tokens, int64_t kv_dim,
                      int64_t head_dim) override {
    cuda::kv_cache_write(cache, k, v, slots, tokens, kv_dim, head_dim, stream_);
  }
  void attention(float* out, const float* q, const KvCacheView& cache, const AttentionBatch& batch,
                 int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale) override {
    cuda::attention(out, q, cache, batch, q_heads, kv_heads, head_dim, scale, stream_);
  }
  void silu_mul(float* out, const float* gate, const float* up, int64_t rows,
                int64_t dim) override {
    cuda::silu_mul(out, gate, up, rows, dim, stream_);
  }
  void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens,
                   int64_t experts, int64_t k, bool normalize) override {
    cuda::router_topk(ids, weights, logits, tokens, experts, k, normalize, stream_);
  }
  void embedding(float* out, const Weight& table, const int32_t* ids, int64_t tokens,
                 int64_t row_offset) override {
    cuda::embedding(out, table, ids, tokens, row_offset, stream_);
  }
  void gather_rows(float* out, const float* in, const int32_t* idx, int64_t n,
                   int64_t dim) override {
    cuda::gather_rows(out, in, idx, n, dim, stream_);
  }
  void rows_to_bf16(uint16_t* out, const float* in, const int32_t* idx, int64_t n,
                    int64_t dim) override {
    cuda::rows_to_bf16(out, in, idx, n, dim, stream_);
  }
  void rows_to_f32(float* out, const uint16_t* in, int64_t n, int64_t dim) override {
    cuda::rows_to_f32(out, in, n, dim, stream_);
  }
  void add(float* y, const float* x, int64_t n) override { cuda::add(y, x, n, stream_); }
  void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index, int32_t* active,
                 const int32_t* ids, int64_t tokens, int64_t k, int64_t experts) override {
    const size_t need = cuda::moe_align_workspace_bytes(tokens, experts);
    if (need > align_ws_bytes_) grow(&align_ws_, &align_ws_bytes_, need, "moe_align");
    cuda::moe_align(offsets, pair_token, pair_index, active, ids, tokens, k, experts, align_ws_,
                    stream_);
  }
  void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                  const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) override {
    cuda::moe_matmul(y, x, w, offsets, active, experts, rows, tokens, stream_);
  }
  void moe_swiglu(float* act, float* gate_out, float* up_out, const float* x,
                  const ExpertWeights& gate, const ExpertWeights& up, const int32_t* offsets,
                  const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) override {
    cuda::moe_swiglu(act, gate_out, up_out, x, gate, up, offsets, active, experts, rows, tokens,
                     stream_);
  }
  void moe_combine(float* out, const float* in, const int32_t* pair_index, const float* weights,
                   int64_t tokens, int64_t k, int64_t dim, bool accumulate) override {
    cuda::moe_combine(out, in, pair_index, weights, tokens, k, dim, accumulate, stream_);
  }
  void moe_dispatch_count(int32_t* stats, const int32_t* ids, const int32_t* owner, int64_t tokens,
                          int64_t k, int64_t experts, int64_t world) override {
    cuda::moe_dispatch_count(stats, ids, owner, tokens, k, experts, world, stream_);
  }
  void moe_dispatch_pack(const MoeDispatchPack& args) override {
    cuda::moe_dispatch_pack(args, stream_);
  }
  void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean,
                   float std) override {
    cuda::fill_random(dst, dtype, n, seed, mean, std, stream_);
  }

  bool has_graphs() const override { return true; }
  bool begin_capture() override {
    QWEN3MOE_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    return true;
  }
  int end_capture() override {
    cudaGraph_t graph = nullptr;
    QWEN3MOE_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    QWEN3MOE_CUDA_CHECK(err);
    graphs_.push_back(exec);
    return int(graphs_.size() - 1);
  }
  void replay(int graph) override {
    QWEN3MOE_CHECK(graph >= 0 && size_t(graph) < graphs_.size() && graphs_[size_t(graph)],
                   "replay: no graph ", graph);
    QWEN3MOE_CUDA_CHECK(cudaGraphLaunch(graphs_[size_t(graph)], stream_));
  }
  void release_graph(int graph) override {
    if (graph < 0 || size_t(graph) >= graphs_.size() || !graphs_[size_t(graph)]) return;
    QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));  // not while a replay is running
    QWEN3MOE_CUDA_CHECK(cudaGraphExecDestroy(graphs_[size_t(graph)]));
    graphs_[size_t(graph)] = nullptr;
  }

 private:
  // Weights live as long as the backend, so they are carved from 1 GiB arenas: cudaMalloc
  // rounds every allocation up to 2 MiB pages, and a model of 3 MiB experts (30B-A3B) mapped
  // one cudaMalloc each would need a third more memory than its weights.
  void* weight_alloc(size_t bytes) {
    bytes = (bytes + 255) / 256 * 256;
    if (bytes > arena_left_) {
      const size_t size = std::max(bytes, kArena);
      void* p = nullptr;
      QWEN3MOE_CUDA_CHECK(cudaMalloc(&p, size));
      weights_.push_back(p);
      arena_next_ = static_cast<char*>(p);
      arena_left_ = size;
    }
    void* out = arena_next_;
    arena_next_ += bytes;
    arena_left_ -= bytes;
    return out;
  }

  void reserve_workspace(size_t bytes) {
    if (bytes > ws_.bytes) grow(&ws_.ptr, &ws_.bytes, bytes, "GEMM");
  }

  // A scratch buffer grown to need (+ half). Never during a capture (cudaMalloc is illegal
  // there). The graphs captured so far hold the old buffer's address and are replayed later,
  // so once a graph exists the old buffer is kept until the backend goes, not freed.
  void grow(void** ptr, size_t* bytes, size_t need, const char* what) {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    QWEN3MOE_CUDA_CHECK(cudaStreamIsCapturing(stream_, &capturing));
    QWEN3MOE_CHECK(capturing == cudaStreamCaptureStatusNone, "CUDA graph capture: the ", what,
                   " workspace must grow to ", need, " bytes; run the step once uncaptured first");
    QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (*ptr) {
      if (graphs_.empty())
        QWEN3MOE_CUDA_CHECK(cudaFree(*ptr));
      else
        retired_.push_back(*ptr);
    }
    *ptr = nullptr;
    *bytes = 0;
    const size_t size = need + need / 2;
    QWEN3MOE_CUDA_CHECK(cudaMalloc(ptr, size));
    *bytes = size;
  }

  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cuda::GemmWorkspace ws_;
  static constexpr size_t kArena = size_t(1) << 30;
  std::vector<void*> weights_;  // the arenas
  char* arena_next_ = nullptr;
  size_t arena_left_ = 0;
  static constexpr size_t kBlasWorkspace = size_t(32) << 20;
  void* blas_ws_ = nullptr;
  // An fp8 weight's block scales beside it on the device: the rows of blocks its rows touch,
  // whole (scale_ld wide), so the slice's first row keeps its offset into its first block.
  void map_fp8_scales(Weight& w, const Weight& host) {
    QWEN3MOE_CHECK(host.scale && host.block_rows > 0 && host.block_cols > 0,
                   "an fp8 weight without its block scales");
    if (host.rows == 0) return;  // no rows, no scales to read
    const int64_t first = host.scale_row0 / host.block_rows;
    const int64_t last = (host.scale_row0 + host.rows - 1) / host.block_rows;
    const size_t bytes = size_t((last - first + 1) * host.scale_ld) * sizeof(float);
    void* dev = weight_alloc(bytes);
    QWEN3MOE_CUDA_CHECK(cudaMemcpyAsync(dev, host.scale + first * host.scale_ld, bytes,
                                        cudaMemcpyHostToDevice, stream_));
    QWEN3MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    w.scale = static_cast<const float*>(dev);
    w.scale_row0 = host.scale_row0 - first * host.block_rows;
  }

  std::vector<cudaGraphExec_t> graphs_;
  std::vector<cudaEvent_t> marks_;  // timestamp()'s events; the first marks_used_ are live
  size_t marks_used_ = 0;
  void* align_ws_ = nullptr;  // moe_align's per-chunk counts (prefill)
  size_t align_ws_bytes_ = 0;
  std::vector<void*> retired_;  // outgrown workspaces that captured graphs may still use
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) {
  return std::make_unique<CudaBackend>(device);
}

CUstream_st* cuda_stream(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  QWEN3MOE_CHECK(cuda != nullptr, "a CUDA stream was asked of the '", backend.name(), "' backend");
  return cuda->stream();
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

}  // namespace qwen3moe
