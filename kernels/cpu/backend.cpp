// The CPU Backend: host memory, the kernels of kernels/cpu, OpenMP threads over the cores.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/common/check.h"
#include "kernels/cpu/ops.h"

namespace qwen3moe {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  std::string name() const override { return "cpu"; }

  void* alloc(size_t bytes) override {
    // 64-byte aligned for AVX loads and to keep rows off shared cache lines.
    void* p = std::aligned_alloc(64, std::max<size_t>((bytes + 63) / 64 * 64, 64));
    QWEN3MOE_CHECK(p != nullptr, "out of host memory allocating ", bytes, " bytes");
    return p;
  }
  void free(void* ptr) override { std::free(ptr); }
  // Zero bytes may come with null pointers (a rank with no tokens in a step): memcpy must not
  // see those even with a size of 0.
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  Weight map_weight(const Weight& host) override { return host; }
  void zero(void* ptr, size_t bytes) override {
    if (bytes) std::memset(ptr, 0, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes && dst != src) std::memmove(dst, src, bytes);
  }
  void synchronize() override {}
  MemoryInfo memory_info() const override {
    const double page = double(sysconf(_SC_PAGESIZE));
    return {size_t(double(sysconf(_SC_AVPHYS_PAGES)) * page),
            size_t(double(sysconf(_SC_PHYS_PAGES)) * page)};
  }
  int64_t timestamp() override {
    marks_.push_back(std::chrono::steady_clock::now());
    return int64_t(marks_.size()) - 1;
  }
  double elapsed_us(int64_t from, int64_t to) override {
    QWEN3MOE_CHECK(from >= 0 && to >= 0 && size_t(std::max(from, to)) < marks_.size(),
                   "elapsed_us: marks ", from, " and ", to, " of ", marks_.size());
    return std::chrono::duration<double, std::micro>(marks_[size_t(to)] - marks_[size_t(from)])
        .count();
  }
  void clear_timestamps() override { marks_.clear(); }

  void matmul(float* y, const float* x, const Weight& w, int64_t m, const float* bias) override {
    cpu::matmul(y, x, w, m, bias);
  }
  void rmsnorm(float* y, const float* x, const float* w, int64_t rows, int64_t dim,
               float eps) override {
    cpu::rmsnorm(y, x, w, rows, dim, eps);
  }
  void rope(float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
            const float* inv_freq, float scale) override {
    cpu::rope(x, positions, tokens, heads, head_dim, inv_freq, scale);
  }
  void kv_cache_write(const KvCacheView& cache, const float* k, const float* v,
                      const int32_t* slots, int64_t tokens, int64_t kv_dim,
                      int64_t head_dim) override {
    cpu::kv_cache_write(cache, k, v, slots, tokens, kv_dim, head_dim);
  }
  void attention(float* out, const float* q, const KvCacheView& cache, const AttentionBatch& batch,
                 int64_t q_heads, int64_t kv_heads, int64_t head_dim, float scale) override {
    cpu::attention(out, q, cache, batch, q_heads, kv_heads, head_dim, scale);
  }
  void silu_mul(float* out, const float* gate, const float* up, int64_t rows,
                int64_t dim) override {
    cpu::silu_mul(out, gate, up, rows, dim);
  }
  void router_topk(int32_t* ids, float* weights, const float* logits, int64_t tokens,
                   int64_t experts, int64_t k, bool normalize) override {
    cpu::router_topk(ids, weights, logits, tokens, experts, k, normalize);
  }
  void embedding(float* out, const Weight& table, const int32_t* ids, int64_t tokens,
                 int64_t row_offset) override {
    cpu::embedding(out, table, ids, tokens, row_offset);
  }
  void gather_rows(float* out, const float* in, const int32_t* idx, int64_t n,
                   int64_t dim) override {
    cpu::gather_rows(out, in, idx, n, dim);
  }
  void rows_to_bf16(uint16_t* out, const float* in, const int32_t* idx, int64_t n,
                    int64_t dim) override {
    cpu::rows_to_bf16(out, in, idx, n, dim);
  }
  void rows_to_f32(float* out, const uint16_t* in, int64_t n, int64_t dim) override {
    cpu::rows_to_f32(out, in, n, dim);
  }
  void add(float* y, const float* x, int64_t n) override { cpu::add(y, x, n); }
  void moe_align(int32_t* offsets, int32_t* pair_token, int32_t* pair_index, int32_t* active,
                 const int32_t* ids, int64_t tokens, int64_t k, int64_t experts) override {
    cpu::moe_align(offsets, pair_token, pair_index, active, ids, tokens, k, experts);
  }
  void moe_matmul(float* y, const float* x, const ExpertWeights& w, const int32_t* offsets,
                  const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) override {
    cpu::moe_matmul(y, x, w, offsets, active, experts, rows, tokens);
  }
  void moe_swiglu(float* act, float* gate_out, float* up_out, const float* x,
                  const ExpertWeights& gate, const ExpertWeights& up, const int32_t* offsets,
                  const int32_t* active, int64_t experts, int64_t rows, int64_t tokens) override {
    cpu::moe_swiglu(act, gate_out, up_out, x, gate, up, offsets, active, experts, rows, tokens);
  }
  void moe_combine(float* out, const float* in, const int32_t* pair_index, const float* weights,
                   int64_t tokens, int64_t k, int64_t dim, bool accumulate) override {
    cpu::moe_combine(out, in, pair_index, weights, tokens, k, dim, accumulate);
  }
  void moe_dispatch_count(int32_t* stats, const int32_t* ids, const int32_t* owner, int64_t tokens,
                          int64_t k, int64_t experts, int64_t world) override {
    cpu::moe_dispatch_count(stats, ids, owner, tokens, k, experts, world);
  }
  void moe_dispatch_pack(const MoeDispatchPack& args) override { cpu::moe_dispatch_pack(args); }
  void fill_random(void* dst, DType dtype, int64_t n, uint64_t seed, float mean,
                   float std) override {
    cpu::fill_random(dst, dtype, n, seed, mean, std);
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;  // timestamp()'s, by id
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace qwen3moe
