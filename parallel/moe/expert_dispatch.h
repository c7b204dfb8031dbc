// MoE token dispatch and combine across expert-parallel ranks (README "Across ranks"). After the
// router, each token goes ONCE to each rank that owns at least one of its top-k experts, carrying
// its expert ids and weights; the owner's experts run over what arrived, the owner forms the
// weighted sum of its experts' outputs per token, and combine sends one row per (token, rank) back,
// where the rows are summed. Counts are exchanged first, then the data; both phases are timed and
// counted for the all-to-all profiler.
//
// Copies are the cost on host memory, so there are as few as the exchange allows:
//  - a rank's own tokens stay where the caller wrote them (input()); its experts read them in
//    place, and nothing goes through the communicator for them;
//  - rows for a peer whose tokens fill at least half of a contiguous range of the input (at
//    small world sizes, nearly always all of it) are sent from the input as they are, the
//    tokens in the range not routed there as idle rows; other peers' rows are packed once;
//    the expert ids and weights of the rows follow in a second, small exchange;
//  - combine sends the partial rows straight from the caller's buffer (each peer's rows are
//    contiguous there); one peer's rows land directly in the output rows of their tokens, the
//    others' are summed onto them in one pass.
// The profiler counts routed rows: those that stay local as dispatched to this rank (the
// diagonal of the bytes matrix, delivered without a copy), idle rows not at all.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "parallel/comm/communicator.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe {

class ExpertDispatch {
 public:
  // experts are placed in contiguous blocks of num_experts / world per rank.
  ExpertDispatch(Communicator& comm, int64_t hidden, int64_t num_experts, int64_t top_k);

  // Sizes the buffers for up to max_tokens tokens per rank per call, so that no call up to
  // that size allocates.
  void reserve(int64_t max_tokens);

  // [n, hidden] host rows the caller fills with this rank's tokens before dispatch(n, ...).
  // Stays valid, and untouched, until the next input() call.
  float* input(int64_t n);

  // ids, weights: [n, top_k] the router's choice for the n tokens of input().
  void dispatch(int64_t n, const int32_t* ids, const float* weights, int64_t layer,
                A2aProfiler* profiler);

  // What the local experts read: rows() rows of `hidden` floats at row_data(), this rank's own
  // n tokens first, then the rows packed for peers (unused here), then what arrived from the
  // other ranks in rank order;
  // and each local expert's (row, weight) pairs, grouped by expert, in source-rank then token
  // order.
  int64_t rows() const { return rows_; }
  const float* row_data() const { return buf_.get(); }
  int64_t local_experts() const { return local_experts_; }
  const std::vector<int64_t>& expert_offsets() const { return offsets_; }  // [local+1]
  const std::vector<int32_t>& pair_rows() const { return pair_rows_; }
  const std::vector<float>& pair_weights() const { return pair_weights_; }

  // partial: [rows(), hidden], row r the weighted sum of this rank's experts' outputs for the
  // token of row r (rows without pairs are not read). Returns [n, hidden] for the n tokens of
  // the last dispatch, the sum over ranks (the rows returned in place first, then the others
  // in rank order), valid until the next combine.
  const float* combine(const float* partial, A2aProfiler* profiler);

 private:
  void ensure_rows(int64_t rows, int64_t keep);
  void exchange_counts(const uint64_t* send, uint64_t* recv);

  Communicator& comm_;
  int64_t hidden_, num_experts_, top_k_, experts_per_rank_, local_experts_;
  int world_, rank_;
  int64_t layer_ = -1;
  int64_t n_ = 0;
  // [capacity_ rows, hidden]: input rows, rows packed for peers, then each peer's rows.
  std::unique_ptr<float[]> buf_;
  int64_t capacity_ = 0, rows_ = 0;
  // Dispatch send side: per destination the tokens it gets, in token order, and per token
  // the index of its row in each destination's block (-1: not sent there). [n, world]
  std::vector<std::vector<int32_t>> dest_tokens_;
  std::vector<int32_t> token_slot_;
  std::vector<float> meta_send_, meta_recv_;
  // [n + rows returned by peers other than the one returned in place, hidden]: the output.
  std::vector<float> out_;
  // Per peer: the first row in buf_ of what it sent us and of what we send it (input rows in
  // place, or packed), the float offsets of its ids+weights both ways, and row counts.
  std::vector<int64_t> block_row_, send_row_;
  std::vector<size_t> meta_at_, meta_recv_at_;
  std::vector<uint64_t> send_rows_, recv_rows_, routed_in_, count_scratch_;
  std::vector<size_t> send_bytes_, send_off_, recv_bytes_, recv_off_, logical_bytes_;
  std::vector<int64_t> back_row_;  // first row of each peer's returned rows in out_
  std::vector<int64_t> offsets_, fill_;
  std::vector<int32_t> pair_rows_;
  std::vector<float> pair_weights_;
  std::vector<const float*> sources_;
};

}  // namespace qwen3moe
