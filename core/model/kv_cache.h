// The paged KV cache: per layer one K and one V buffer of num_blocks * block_size slots, each
// slot one token's keys (or values) for this rank's KV heads, in f32, bf16 or fp8 (e4m3 over
// a scale per KV head, all 1 for now: vLLM's default without calibrated scales). Sequences
// own blocks through a block table; blocks return to the free list the moment a sequence ends.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/checkpoint/config.h"
#include "kernels/backend.h"
#include "parallel/topology.h"

namespace qwen3moe {

class KvCache {
 public:
  // blocks_only: the block bookkeeping without the K/V memory, for the scheduler's view of a
  // cache that lives on other ranks (another DP group's).
  KvCache(const ModelConfig& config, const Topology& topo, Backend& backend, int64_t num_blocks,
          int64_t block_size = 16, DType dtype = DType::F32, bool blocks_only = false);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t block_size() const { return block_size_; }
  int64_t num_blocks() const { return num_blocks_; }
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

  // Allocation: a free block, else the least recently used cached one no sequence holds
  // (prefix caching), with one reference; Error when neither is left. free_block drops a
  // reference: at zero a published block stays cached (evictable), any other becomes free.
  int32_t allocate_block();
  void free_block(int32_t block);
  // Blocks allocate_block can still hand out: free plus evictable cached ones.
  int64_t free_blocks() const { return int64_t(free_.size() + evictable_.size()); }

  // Prefix caching (vLLM's automatic prefix caching): a full block is published under a hash
  // chained over its parent's hash and its block_size token ids; a later sequence whose tokens
  // start the same way adopts it instead of recomputing its KV. The tokens and parent are
  // kept beside the hash and compared on every hit, so a hash collision is a miss, never a
  // wrong block.
  void enable_prefix_cache(bool on) { prefix_cache_ = on; }
  bool prefix_cache() const { return prefix_cache_; }
  // The cached block after `parent` (0: the first) holding `tokens` [block_size], with a
  // reference taken, and its hash in *hash; -1 when there is none.
  int32_t adopt(uint64_t parent, const int32_t* tokens, uint64_t* hash);
  // `block` (full, referenced) now holds `tokens` after `parent`: cached for others unless an
  // equal block already is. Returns its chained hash, or 0 when a different block holds that
  // hash (a collision: the sequence publishes nothing more).
  uint64_t publish(int32_t block, uint64_t parent, const int32_t* tokens);
  int64_t cached_blocks() const { return int64_t(by_hash_.size()); }
  int64_t evictable_blocks() const { return int64_t(evictable_.size()); }

 private:
  uint64_t chain(uint64_t parent, const int32_t* tokens) const;
  void forget(int32_t block);  // drops a block's cache entry
  Backend& backend_;
  int64_t num_blocks_, block_size_, kv_dim_, num_layers_;
  DType dtype_;
  std::vector<void*> k_, v_;
  float* scales_ = nullptr;  // [kv heads] fp8's per-head scale (K and V), backend memory
  std::vector<int32_t> free_;
  // Prefix cache: references and cache entry per block, the hash index, and the evictable
  // blocks by when they were last released (oldest first).
  struct Entry {
    uint64_t hash = 0, parent = 0;  // hash 0: not published
    std::vector<int32_t> tokens;
    uint64_t released = 0;  // the tick it joined evictable_
  };
  bool prefix_cache_ = false;
  std::vector<int32_t> refs_;
  std::vector<Entry> entry_;
  std::unordered_map<uint64_t, int32_t> by_hash_;
  std::map<uint64_t, int32_t> evictable_;  // tick -> block
  uint64_t tick_ = 0;
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
  // With prefix caching: adopts the cached blocks that hold `prompt`'s leading full blocks
  // (never its last token, which must be computed for its logits); returns the tokens reused.
  int64_t adopt_prefix(const std::vector<int32_t>& prompt);
  // Reserves slots for n more tokens; appends their slot numbers to slots. With their ids
  // (tokens [n], or null) each block they fill is published to the prefix cache.
  void append(int64_t n, std::vector<int32_t>& slots, const int32_t* tokens = nullptr);
  void release();

 private:
  KvCache* cache_;
  std::vector<int32_t> blocks_;
  int64_t length_ = 0;
  uint64_t last_hash_ = 0;        // the chained hash of the last full block (0: none yet)
  bool chain_broken_ = false;     // a block was filled without its token ids: stop publishing
  std::vector<int32_t> pending_;  // ids of the partly filled block, for publishing
};

}  // namespace qwen3moe
