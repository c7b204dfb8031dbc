// Who does what, built once: world size and rank, the DP groups of tp ranks, the tensor-parallel
// split of attention heads within a group (KV heads split, or replicated when tp > kv heads),
// the contiguous block of experts this rank owns (EP over the whole world), and its slice of
// the vocabulary (within its group). Immutable after construction; every
// invalid split is an Error naming the numbers.
#pragma once

#include <cstdint>
#include <string>

namespace qwen3moe {

struct TopologyShape {
  int64_t num_heads = 0;  // query heads
  int64_t num_kv_heads = 0;
  int64_t num_experts = 0;  // 0 for a dense model
  int64_t vocab_size = 0;
};

class Topology {
 public:
  // tp <= 0 means tp = world. EP spans the whole world.
  Topology(int rank, int world, int tp, const TopologyShape& shape);
  // The experts' placement alone (one head and vocabulary row per rank): what the dispatch
  // benchmark and its tests place experts with, as the model would.
  static Topology experts_only(int rank, int world, int64_t num_experts) {
    return Topology(rank, world, world, {world, world, num_experts, world});
  }

  int rank() const { return rank_; }
  int world() const { return world_; }
  int tp() const { return tp_; }
  int ep() const { return ep_; }
  int tp_rank() const { return rank_ % tp_; }
  // Attention data parallelism: world = dp x tp; DP group g is ranks [g*tp, (g+1)*tp), each
  // with a whole copy of attention split over its tp ranks and its own sequences.
  int dp() const { return world_ / tp_; }
  int dp_rank() const { return rank_ / tp_; }

  int64_t heads_per_rank() const { return heads_per_rank_; }
  int64_t head_begin() const { return tp_rank() * heads_per_rank_; }
  int64_t kv_heads_per_rank() const { return kv_heads_per_rank_; }
  // First KV head this rank holds (when replicated: the one its q heads map to).
  int64_t kv_head_begin() const { return kv_head_begin_; }

  int64_t experts_per_rank() const { return experts_per_rank_; }
  int64_t expert_begin() const { return (rank_ % ep_) * experts_per_rank_; }
  int64_t num_experts() const { return experts_per_rank_ * ep_; }
  // The one place that says where experts live (contiguous blocks today): the rank that holds
  // an expert and its index among that rank's experts.
  int expert_owner(int64_t expert) const { return int(expert / experts_per_rank_); }
  int64_t expert_index_on_owner(int64_t expert) const {
    return expert - int64_t(expert_owner(expert)) * experts_per_rank_;
  }

  // Vocabulary rows [vocab_begin, vocab_end) live on this rank: every tp rank gets
  // ceil(vocab / tp) rows, so the last one(s) hold fewer (none when tp exceeds the vocabulary).
  int64_t vocab_begin() const { return vocab_begin_; }
  int64_t vocab_end() const { return vocab_end_; }

  std::string describe() const;

 private:
  int rank_, world_, tp_, ep_;
  int64_t heads_per_rank_, kv_heads_per_rank_, kv_head_begin_, experts_per_rank_;
  int64_t vocab_begin_, vocab_end_;
};

}  // namespace qwen3moe
