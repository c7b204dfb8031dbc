#include "core/model/kv_cache.h"

#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe {

KvCache::KvCache(const ModelConfig& config, const Topology& topo, Backend& backend,
                 int64_t num_blocks, int64_t block_size, DType dtype)
    : backend_(backend),
      num_blocks_(num_blocks),
      block_size_(block_size),
      kv_dim_(topo.kv_heads_per_rank() * config.head_dim),
      dtype_(dtype) {
  QWEN3MOE_CHECK(num_blocks > 0, "KV cache needs at least one block, got ", num_blocks);
  QWEN3MOE_CHECK(block_size > 0, "KV block size must be positive, got ", block_size);
  QWEN3MOE_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F8E4M3,
                 "KV cache dtype ", dtype_name(dtype), " is not supported (f32, bf16, fp8)");
  const size_t bytes = size_t(num_blocks * block_size * kv_dim_) * dtype_size(dtype);
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    k_.push_back(backend.alloc(bytes));
    v_.push_back(backend.alloc(bytes));
  }
  const std::vector<float> ones(size_t(topo.kv_heads_per_rank()), 1.0f);
  scales_ = static_cast<float*>(backend.alloc(ones.size() * sizeof(float)));
  backend.upload(scales_, ones.data(), ones.size() * sizeof(float));
  free_.reserve(size_t(num_blocks));
  // Lowest block ids are handed out first.
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

KvCache::~KvCache() {
  for (void* p : k_) backend_.free(p);
  for (void* p : v_) backend_.free(p);
  backend_.free(scales_);
}

size_t KvCache::bytes_per_token() const {
  return 2 * k_.size() * size_t(kv_dim_) * dtype_size(dtype_);
}

size_t KvCache::bytes_per_token(const ModelConfig& config, const Topology& topo, DType dtype) {
  return 2 * size_t(config.num_hidden_layers) * size_t(topo.kv_heads_per_rank() * config.head_dim) *
         dtype_size(dtype);
}

int32_t KvCache::allocate_block() {
  QWEN3MOE_CHECK(!free_.empty(), "KV cache is full (", num_blocks_, " blocks of ", block_size_,
                 " tokens)");
  const int32_t b = free_.back();
  free_.pop_back();
  return b;
}

void KvCache::free_block(int32_t block) {
  free_.push_back(block);
}

void SequenceKv::append(int64_t n, std::vector<int32_t>& slots) {
  const int64_t bs = cache_->block_size();
  for (int64_t i = 0; i < n; ++i, ++length_) {
    if (length_ % bs == 0) blocks_.push_back(cache_->allocate_block());
    slots.push_back(int32_t(blocks_.back() * bs + length_ % bs));
  }
}

void SequenceKv::release() {
  for (int32_t b : blocks_) cache_->free_block(b);
  blocks_.clear();
  length_ = 0;
}

}  // namespace qwen3moe
