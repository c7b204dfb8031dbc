#include "parallel/topology.h"

#include <algorithm>
#include <sstream>

#include "kernels/common/check.h"
#include "kernels/common/split.h"

namespace qwen3moe {

Topology::Topology(int rank, int world, int tp, const TopologyShape& s) {
  QWEN3MOE_CHECK(world >= 1, "world size must be >= 1, got ", world);
  QWEN3MOE_CHECK(rank >= 0 && rank < world, "rank ", rank, " outside world of ", world);
  if (tp <= 0) tp = world;
  QWEN3MOE_CHECK(world % tp == 0, "tp=", tp, " does not divide the world size ", world);
  QWEN3MOE_CHECK(s.num_heads % tp == 0, s.num_heads,
                 " attention heads cannot be split over tp=", tp);
  if (tp > s.num_kv_heads) {
    QWEN3MOE_CHECK(tp % s.num_kv_heads == 0, s.num_kv_heads,
                   " key/value heads cannot be replicated over tp=", tp,
                   " (tp must be a multiple of the KV heads)");
  } else {
    QWEN3MOE_CHECK(s.num_kv_heads % tp == 0, s.num_kv_heads,
                   " key/value heads cannot be split over tp=", tp);
  }
  rank_ = rank;
  world_ = world;
  tp_ = tp;
  ep_ = world;
  if (s.num_experts > 0) {
    QWEN3MOE_CHECK(s.num_experts % ep_ == 0, s.num_experts,
                   " experts cannot be split over ep=", ep_);
    experts_per_rank_ = s.num_experts / ep_;
  } else {
    experts_per_rank_ = 0;
  }
  heads_per_rank_ = s.num_heads / tp;
  if (tp > s.num_kv_heads) {
    kv_heads_per_rank_ = 1;
    kv_head_begin_ = tp_rank() / (tp / s.num_kv_heads);
  } else {
    kv_heads_per_rank_ = s.num_kv_heads / tp;
    kv_head_begin_ = tp_rank() * kv_heads_per_rank_;
  }
  const Slice vocab = even_split(s.vocab_size, tp, tp_rank());
  vocab_begin_ = vocab.begin;
  vocab_end_ = vocab.begin + vocab.size;
}

std::string Topology::describe() const {
  std::ostringstream os;
  os << "rank " << rank_ << "/" << world_;
  if (dp() > 1) os << " dp=" << dp() << " group " << dp_rank();
  os << " tp=" << tp_ << " ep=" << ep_ << " heads [" << head_begin() << ","
     << head_begin() + heads_per_rank_ << ") kv heads [" << kv_head_begin_ << ","
     << kv_head_begin_ + kv_heads_per_rank_ << ")";
  if (experts_per_rank_)
    os << " experts [" << expert_begin() << "," << expert_begin() + experts_per_rank_ << ")";
  os << " vocab [" << vocab_begin_ << "," << vocab_end_ << ")";
  return os.str();
}

}  // namespace qwen3moe
