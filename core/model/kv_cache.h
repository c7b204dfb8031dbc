// The paged KV cache: per layer one K and one V buffer of num_blocks * block_size slots, each
// slot one token's keys (or values) for this rank's KV heads, in f32, bf16 or fp8 (e4m3 over
// a scale per KV head, 1 unless a checkpoint brings calibrated ones: vLLM's default). Sequences
// own blocks through a block table; blocks return to the free list the moment a sequence ends.
#pragma once

#include <cstdint>
#include <vector>

#include "core/checkpoint/config.h"
#include "kernels/backend.h"
#include "parallel/topology.h"

namespace qwen3moe {

class KvCache {
 public:
  KvCache(const ModelConfig& config, const Topology& topo, Backend& backend, int64_t num_blocks,
          int64_t block_size = 16, DType dtype = DType::F32);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t free_blocks() const { return int64_t(free_.size()); }
  int64_t kv_dim() const { return kv_dim_; }
  DType dtype() const { return dtype_; }
  // Layer `layer`'s K and V as the kernels take them.
  KvCacheView view(int64_t layer) const {
    return {k_[size_t(layer)], v_[size_t(layer)], dtype_, scales_, scales_};
  }
  // Bytes of one token's K and V over all layers on this rank; the static form plans a cache
  // before it exists (serve's default size, inspect's per-rank plan).
  size_t bytes_per_token() const;
  static size_t bytes_per_token(const ModelConfig& config, const Topology& topo,
                                DType dtype = DType::F32);

  // Allocation: Error when the pool is exhausted.
  int32_t allocate_block();
  void free_block(int32_t block);

 private:
  Backend& backend_;
  int64_t num_blocks_, block_size_, kv_dim_;
  DType dtype_;
  std::vector<void*> k_, v_;
  float* scales_ = nullptr;  // [kv heads] fp8's per-head scale (K and V), backend memory
  std::vector<int32_t> free_;
};

// One sequence's view of the cache: its blocks and how many tokens it holds.
class SequenceKv {
 public:
  explicit SequenceKv(KvCache& cache) : cache_(&cache) {}
  ~SequenceKv() { release(); }
  SequenceKv(const SequenceKv&) = delete;
  SequenceKv& operator=(const SequenceKv&) = delete;

  int64_t length() const { return length_; }
  const std::vector<int32_t>& blocks() const { return blocks_; }
  // Reserves slots for n more tokens; appends their slot numbers to slots.
  void append(int64_t n, std::vector<int32_t>& slots);
  void release();

 private:
  KvCache* cache_;
  std::vector<int32_t> blocks_;
  int64_t length_ = 0;
};

}  // namespace qwen3moe
