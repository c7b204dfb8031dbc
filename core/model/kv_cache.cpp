#include "core/model/kv_cache.h"

#include <algorithm>
#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe {

KvCache::KvCache(const ModelConfig& config, const Topology& topo, Backend& backend,
                 int64_t num_blocks, int64_t block_size, DType dtype, bool blocks_only)
    : backend_(backend),
      num_blocks_(num_blocks),
      block_size_(block_size),
      kv_dim_(topo.kv_heads_per_rank() * config.head_dim),
      num_layers_(config.num_hidden_layers),
      dtype_(dtype) {
  QWEN3MOE_CHECK(num_blocks > 0, "KV cache needs at least one block, got ", num_blocks);
  QWEN3MOE_CHECK(block_size > 0, "KV block size must be positive, got ", block_size);
  QWEN3MOE_CHECK(dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F8E4M3,
                 "KV cache dtype ", dtype_name(dtype), " is not supported (f32, bf16, fp8)");
  if (!blocks_only) {
    const size_t bytes = size_t(num_blocks * block_size * kv_dim_) * dtype_size(dtype);
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
      k_.push_back(backend.alloc(bytes));
      v_.push_back(backend.alloc(bytes));
    }
    const std::vector<float> ones(size_t(topo.kv_heads_per_rank()), 1.0f);
    scales_ = static_cast<float*>(backend.alloc(ones.size() * sizeof(float)));
    backend.upload(scales_, ones.data(), ones.size() * sizeof(float));
  }
  refs_.assign(size_t(num_blocks), 0);
  entry_.resize(size_t(num_blocks));
  free_.reserve(size_t(num_blocks));
  // Lowest block ids are handed out first.
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

KvCache::~KvCache() {
  for (void* p : k_) backend_.free(p);
  for (void* p : v_) backend_.free(p);
  if (scales_) backend_.free(scales_);
}

size_t KvCache::bytes_per_token() const {
  return 2 * size_t(num_layers_) * size_t(kv_dim_) * dtype_size(dtype_);
}

size_t KvCache::bytes_per_token(const ModelConfig& config, const Topology& topo, DType dtype) {
  return 2 * size_t(config.num_hidden_layers) * size_t(topo.kv_heads_per_rank() * config.head_dim) *
         dtype_size(dtype);
}

int32_t KvCache::allocate_block() {
  int32_t b = -1;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    QWEN3MOE_CHECK(!evictable_.empty(), "KV cache is full (", num_blocks_, " blocks of ",
                   block_size_, " tokens)");
    b = evictable_.begin()->second;  // the least recently used cached block
    evictable_.erase(evictable_.begin());
    forget(b);
  }
  refs_[size_t(b)] = 1;
  return b;
}

void KvCache::free_block(int32_t block) {
  QWEN3MOE_CHECK(block >= 0 && block < num_blocks_ && refs_[size_t(block)] > 0, "KV cache: block ",
                 block, " freed without a reference");
  if (--refs_[size_t(block)] > 0) return;
  Entry& e = entry_[size_t(block)];
  if (prefix_cache_ && e.hash != 0) {
    e.released = ++tick_;
    evictable_.emplace(e.released, block);
  } else {
    forget(block);
    free_.push_back(block);
  }
}

void KvCache::forget(int32_t block) {
  Entry& e = entry_[size_t(block)];
  if (e.hash != 0) {
    auto it = by_hash_.find(e.hash);
    if (it != by_hash_.end() && it->second == block) by_hash_.erase(it);
  }
  e = Entry{};
}

uint64_t KvCache::chain(uint64_t parent, const int32_t* tokens) const {
  // FNV-1a over the parent hash, the cache's dtype and the token ids; never 0 (0: no hash).
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  };
  mix(parent);
  mix(uint64_t(dtype_));
  for (int64_t i = 0; i < block_size_; ++i) mix(uint64_t(uint32_t(tokens[i])));
  return h == 0 ? 1 : h;
}

int32_t KvCache::adopt(uint64_t parent, const int32_t* tokens, uint64_t* hash) {
  if (!prefix_cache_) return -1;
  const uint64_t h = chain(parent, tokens);
  auto it = by_hash_.find(h);
  if (it == by_hash_.end()) return -1;
  const int32_t b = it->second;
  const Entry& e = entry_[size_t(b)];
  if (e.parent != parent || !std::equal(e.tokens.begin(), e.tokens.end(), tokens)) return -1;
  if (refs_[size_t(b)]++ == 0) evictable_.erase(e.released);
  *hash = h;
  return b;
}

uint64_t KvCache::publish(int32_t block, uint64_t parent, const int32_t* tokens) {
  const uint64_t h = chain(parent, tokens);
  if (!prefix_cache_) return h;
  auto it = by_hash_.find(h);
  if (it != by_hash_.end()) {
    // An equal block is cached already: this chain continues from it. A different one under
    // the same hash (a collision) ends this sequence's publishing (0).
    const Entry& e = entry_[size_t(it->second)];
    const bool equal = e.parent == parent && std::equal(e.tokens.begin(), e.tokens.end(), tokens);
    return equal ? h : 0;
  }
  Entry& e = entry_[size_t(block)];
  e.hash = h;
  e.parent = parent;
  e.tokens.assign(tokens, tokens + block_size_);
  by_hash_[h] = block;
  return h;
}

int64_t SequenceKv::adopt_prefix(const std::vector<int32_t>& prompt) {
  const int64_t bs = cache_->block_size();
  QWEN3MOE_CHECK(length_ == 0, "adopt_prefix on a sequence that holds tokens");
  if (!cache_->prefix_cache()) return 0;
  // Whole blocks only, and never the prompt's last token.
  while ((length_ + bs) <= int64_t(prompt.size()) - 1) {
    uint64_t h = 0;
    const int32_t b = cache_->adopt(last_hash_, prompt.data() + length_, &h);
    if (b < 0) break;
    blocks_.push_back(b);
    last_hash_ = h;
    length_ += bs;
  }
  return length_;
}

void SequenceKv::append(int64_t n, std::vector<int32_t>& slots, const int32_t* tokens) {
  const int64_t bs = cache_->block_size();
  for (int64_t i = 0; i < n; ++i, ++length_) {
    if (length_ % bs == 0) blocks_.push_back(cache_->allocate_block());
    slots.push_back(int32_t(blocks_.back() * bs + length_ % bs));
    if (!cache_->prefix_cache() || chain_broken_) continue;
    if (!tokens) {
      chain_broken_ = true;  // a block without its ids cannot be published, nor any after it
      continue;
    }
    pending_.push_back(tokens[i]);
    if (int64_t(pending_.size()) == bs) {
      last_hash_ = cache_->publish(blocks_.back(), last_hash_, pending_.data());
      chain_broken_ = last_hash_ == 0;  // a hash collision: publish nothing after it
      pending_.clear();
    }
  }
}

void SequenceKv::release() {
  // Last block first: released blocks are evicted oldest first, and a prompt's later blocks
  // are only reachable through its earlier ones, so its first block must go last.
  for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) cache_->free_block(*it);
  blocks_.clear();
  length_ = 0;
  last_hash_ = 0;
  chain_broken_ = false;
  pending_.clear();
}

}  // namespace qwen3moe
