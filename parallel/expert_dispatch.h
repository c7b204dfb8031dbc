// MoE token dispatch and combine across expert-parallel ranks (DESIGN.md "One decode step
// across ranks"). After the router, each token goes ONCE to each rank that owns at least one of
// its top-k experts, carrying its expert ids and weights; the owner's experts run over what
// arrived, the owner forms the weighted sum of its experts' outputs per token, and combine
// sends one row per (token, rank) back, where the rows are summed. Counts are exchanged first,
// then the data; both phases are timed and counted for the all-to-all profiler.
#pragma once

#include <cstdint>
#include <vector>

#include "parallel/a2a_profiler.h"
#include "parallel/communicator.h"

namespace qwen3moe {

class ExpertDispatch {
 public:
  // experts are placed in contiguous blocks of num_experts / world per rank.
  ExpertDispatch(Communicator& comm, int64_t hidden, int64_t num_experts, int64_t top_k);

  // h: [n, hidden] this rank's tokens; ids, weights: [n, top_k] (host memory).
  void dispatch(const float* h, int64_t n, const int32_t* ids, const float* weights, int64_t layer,
                A2aProfiler* profiler);

  // What arrived, read in place: received_rows rows of received_stride floats, the first
  // `hidden` of each the token's hidden state; and the (row, weight) pairs of each local
  // expert, grouped by expert in row order.
  int64_t received_rows() const { return recv_rows_; }
  const float* received() const { return recv_buf_.data(); }
  int64_t received_stride() const { return hidden_ + 2 * top_k_; }
  int64_t local_experts() const { return local_experts_; }
  const std::vector<int64_t>& expert_offsets() const { return offsets_; }  // [local+1]
  const std::vector<int32_t>& pair_rows() const { return pair_rows_; }
  const std::vector<float>& pair_weights() const { return pair_weights_; }

  // partial: [received_rows, hidden], each row the weighted sum of this rank's experts for
  // that token. y: [n, hidden] of the last dispatch, overwritten with the sum over ranks.
  void combine(const float* partial, float* y, A2aProfiler* profiler);

 private:
  void exchange(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                const std::vector<size_t>& recv_bytes);

  Communicator& comm_;
  int64_t hidden_, num_experts_, top_k_, experts_per_rank_, local_experts_;
  int world_, rank_;
  int64_t layer_ = -1;
  // Dispatch send side: per destination the tokens it gets, in token order.
  std::vector<std::vector<int32_t>> dest_tokens_;
  int64_t n_ = 0;
  std::vector<float> send_buf_, recv_buf_, back_buf_;
  std::vector<size_t> send_rows_, recv_rows_per_peer_;
  int64_t recv_rows_ = 0;
  std::vector<int64_t> offsets_;
  std::vector<int32_t> pair_rows_;
  std::vector<float> pair_weights_;
};

}  // namespace qwen3moe
