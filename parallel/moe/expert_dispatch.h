// MoE token dispatch and combine across expert-parallel ranks (README "Across ranks"), on
// backend memory end to end: the same code runs on the CPU backend over MPI and on GPUs over
// NCCL or host-staged MPI, so the CPU tests exercise what a GPU deployment runs. After the
// router, each token goes ONCE to each rank that owns at least one of its top-k experts,
// carrying its expert ids (as the owner's local ids) and weights; the owner's experts run over
// what arrived and write, per row, the weighted sum of their outputs; combine sends one row per
// (token, rank) back, where the rows are added into the residual.
//
// The phases, as DeepEP names them: layout (Backend::moe_dispatch_count: which ranks each token
// goes to; the host reads these few ints per rank, the only device-to-host traffic), dispatch
// (the plan, Backend::moe_dispatch_pack, the exchanges) and combine (the exchange back, one
// Backend::moe_combine of each token's returned rows). dispatch() returns a DispatchHandle that
// says where the experts read and write, and combine() consumes it.
//
// Copies are the cost, so there are as few as the exchange allows:
//  - a rank's own tokens stay where the caller wrote them (input()); its experts read them in
//    place, and nothing goes through the communicator for them;
//  - rows for a peer whose tokens fill at least half of a contiguous range of the input (at
//    small world sizes, nearly always all of it) are sent from the input as they are, the
//    tokens in the range not routed there as idle rows (no expert ids); other peers' rows are
//    packed once (Backend::gather_rows); the ids and weights follow in one small exchange;
//  - combine sends each peer's rows straight from the partial buffer (they are contiguous
//    there, as they arrived).
// The rows' payload is f32 (exact) or bf16 (set_payload_dtype: half the bytes both ways; rows
// are rounded to bf16 where they leave and widened where they land, the own rows stay f32, ids
// and weights always travel exact). bf16 rows cannot be sent from where they are, so every
// sent row is converted once into a staging buffer, in the same plan.
// Fixed capacity (set_capacity(C), for decode): when no rank has more than C tokens, every rank
// sends every peer the same C input rows [0, C) (its n tokens, then idle rows) and each peer's
// meta in blocks of C rows, and gets C rows back from each: sizes every rank knows without the
// count exchange, so the host reads nothing and uploads nothing, and a whole step can be one
// CUDA graph. It moves C rows per peer however the tokens route (at decode sizes the cost is
// the latency of a round trip, not the bytes); larger steps (prefill) take the counted path.
// At world 1 dispatch is the identity: the experts read the input and the router's arrays and
// write into the residual, and combine has nothing to do.
// The profiler counts routed rows: those that stay local as dispatched to this rank (the
// diagonal of the bytes matrix, delivered without a copy), idle rows not at all; under a
// fixed capacity, what travels: C rows to and from each peer.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"
#include "parallel/moe/exchange_counters.h"
#include "parallel/profile/a2a_profiler.h"
#include "parallel/topology.h"

namespace qwen3moe {

// What one dispatch hands the local experts, and what combine() takes back. Backend memory.
struct DispatchHandle {
  int64_t tokens = 0;  // this rank's tokens (n)
  // Expert input rows: the n own rows, the rows packed for peers (no local experts), then the
  // rows received from each peer in rank order.
  int64_t rows = 0;
  const float* row_data = nullptr;  // [rows, hidden]
  const int32_t* ids = nullptr;     // [rows, k] local expert ids, -1: not for this rank
  const float* weights = nullptr;   // [rows, k]
  // Where the experts' weighted sum of each row goes (add_expert_outputs does both): rows
  // [0, n) are this rank's own tokens and add into `residual` in place; rows [peer_begin,
  // rows) came from peers and are written to expert_out[row] for combine to send back (rows
  // without pairs are never read). The packed rows between hold no local experts.
  int64_t peer_begin = 0;
  float* expert_out = nullptr;  // [rows, hidden]
  float* residual = nullptr;    // [n, hidden] combine adds every token's returned rows here
  int64_t layer = -1;
};

// The experts' last step over a dispatch's rows: each row's sum_j weights[r, j] *
// in[pair_index[r, j]] (in: the experts' outputs, pair_index: moe_align's) added into the
// residual for the own rows, written to expert_out for the peers'.
void add_expert_outputs(Backend& backend, const DispatchHandle& handle, const float* in,
                        const int32_t* pair_index, int64_t k, int64_t hidden);

class ExpertDispatch {
 public:
  // comm carries backend memory (the model's device communicator). Experts live where
  // topo.expert_owner says.
  ExpertDispatch(Backend& backend, Communicator& comm, const Topology& topo, int64_t hidden,
                 int64_t top_k);
  ~ExpertDispatch();
  ExpertDispatch(const ExpertDispatch&) = delete;
  ExpertDispatch& operator=(const ExpertDispatch&) = delete;

  // Sizes the buffers for up to max_tokens tokens per rank per call, so that no call up to
  // that size allocates.
  void reserve(int64_t max_tokens);

  // The fixed-capacity exchange for calls whose ranks have at most `tokens` tokens each (0:
  // off). Sizes its buffers now: no call that takes it allocates.
  void set_capacity(int64_t tokens);
  int64_t capacity() const { return capacity_; }
  // Whether a call whose ranks have at most `max_rank_tokens` tokens takes the fixed-capacity
  // exchange: no host read or upload, so a backend graph may hold it.
  bool fixed(int64_t max_rank_tokens) const {
    return world_ > 1 && capacity_ > 0 && max_rank_tokens <= capacity_;
  }
  // Times a buffer was replaced by a larger one: graphs captured before hold the old addresses.
  int64_t reallocations() const { return reallocations_; }
  // Dispatches that took the fixed-capacity exchange (for tests and the bench).
  int64_t fixed_dispatches() const { return fixed_dispatches_; }

  // F32 (the default) or BF16: the dtype of the rows on the wire, both ways.
  void set_payload_dtype(DType dtype);
  // Always-on totals of this rank's exchanges (bytes sent to peers, host time where timed);
  // null: none.
  void set_counters(ExchangeCounters* counters) { counters_ = counters; }
  DType payload_dtype() const { return payload_; }

  // [n, hidden] backend rows the caller fills with this rank's tokens before dispatch(n, ...).
  // Stays valid, and untouched, until the next input() call.
  float* input(int64_t n);

  // ids, weights: [n, k] the router's choice (global expert ids) for the n tokens of input(),
  // backend memory; residual [n, hidden]: where combine (world 1: the experts) adds the result.
  // max_rank_tokens: the most tokens any rank has in this call, the same on every rank (it
  // picks the exchange, which every rank must agree on).
  DispatchHandle dispatch(int64_t n, int64_t max_rank_tokens, const int32_t* ids,
                          const float* weights, float* residual, int64_t layer,
                          A2aProfiler* profiler);

  // Sends each row's expert output back to the rank of its token and adds, per token, the rows
  // returned for it into handle.residual.
  void combine(const DispatchHandle& handle, A2aProfiler* profiler);

 private:
  DispatchHandle dispatch_fixed(int64_t n, const int32_t* ids, const float* weights,
                                DispatchHandle h, A2aProfiler* profiler);
  // The per-call plan (the row and count vectors below, rows_, returned_) for a capacity of C
  // rows per peer, as the counted path's plan would have been: one combine serves both.
  void use_fixed_layout(int64_t C);
  // The ids and weights, one block per peer, then each block's halves into the expert input.
  void exchange_meta();
  // moe_dispatch_pack's arguments for n tokens over `plan`, this dispatcher's buffers.
  MoeDispatchPack pack_args(int64_t n, const int32_t* ids, const float* weights,
                            const int32_t* plan) const;
  void ensure_rows(int64_t rows, int64_t keep);
  void ensure_meta(int64_t send_rows, int64_t recv_rows);
  // counts_send_ out, counts_recv_ in, through backend memory (the communicator's kind).
  void exchange_counts();
  // Per-peer byte counts and offsets of `row_bytes`-byte rows, then one all_to_all_v.
  void exchange(const void* send, const std::vector<int64_t>& send_row,
                const std::vector<int64_t>& send_rows, void* recv,
                const std::vector<int64_t>& recv_row, const std::vector<int64_t>& recv_rows,
                size_t row_bytes);
  // The bf16 payload's round trip for contiguous rows: rows[n, H] rounded into the send
  // staging, exchanged (offsets in staging rows), and the `received` rows widened into out.
  void exchange_bf16(const float* rows, int64_t n, const std::vector<int64_t>& send_row,
                     const std::vector<int64_t>& send_rows, float* out, int64_t received,
                     const std::vector<int64_t>& recv_row, const std::vector<int64_t>& recv_rows);
  template <typename T>
  T* grow(T*& ptr, int64_t& capacity, int64_t need, int64_t keep);

  Backend& backend_;
  Communicator& comm_;
  int64_t hidden_, top_k_, num_experts_;
  int world_, rank_;
  int64_t n_ = 0;
  // Backend buffers, each with its capacity in elements.
  int32_t* owner_ = nullptr;         // [E] rank of each expert
  int32_t* local_ = nullptr;         // [E] index of each expert on its rank
  float* rows_buf_ = nullptr;        // [rows, H]: input, packed, received rows
  float* partial_ = nullptr;         // [rows + returned, H]: expert outputs, then returns
  int32_t* meta_ids_ = nullptr;      // [rows, k] expert input ids (own, packed, received)
  float* meta_w_ = nullptr;          // [rows, k]
  int32_t* send_meta_ = nullptr;     // [2 * sent rows * k] per peer: ids, then weights
  int32_t* recv_meta_ = nullptr;     // [2 * received rows * k] the same, as they arrive
  int32_t* combine_rows_ = nullptr;  // [n, W]
  int32_t* pack_src_ = nullptr;      // [packed]
  int32_t* stats_ = nullptr;         // [3, W] moe_dispatch_count's
  int32_t* plan_dev_ = nullptr;      // [4, W]
  int32_t* fixed_plan_ = nullptr;    // [4, W] the fixed-capacity plan, uploaded once
  uint32_t* counts_dev_ = nullptr;   // [2, 2, W] counts exchange: send, recv (rows, routed)
  DType payload_ = DType::F32;
  uint16_t* out_stage_ = nullptr;  // bf16 payload: [rows sent, H] rows leaving this rank
  uint16_t* in_stage_ = nullptr;   // bf16 payload: [rows received, H] rows arriving
  int64_t out_stage_cap_ = 0, in_stage_cap_ = 0;
  // Per peer: rows into the receive staging (bf16 rows, the meta) and the combine staging.
  std::vector<int64_t> stage_row_, back_stage_row_;
  int64_t rows_cap_ = 0, partial_cap_ = 0, meta_ids_cap_ = 0, meta_w_cap_ = 0, send_meta_cap_ = 0,
          recv_meta_cap_ = 0, combine_cap_ = 0, pack_cap_ = 0;
  // The last dispatch's plan (host), per peer.
  std::vector<int32_t> stats_host_, plan_host_;
  std::vector<int64_t> send_row_, send_rows_, meta_row_, block_row_, recv_rows_, back_row_;
  std::vector<uint32_t> counts_send_, counts_recv_;  // [W, 2]: per peer rows, routed rows
  std::vector<size_t> send_bytes_, send_off_, recv_bytes_, recv_off_, logical_bytes_;
  int64_t rows_ = 0, returned_ = 0;
  // The fixed capacity (0: off), buffer replacements, fixed-capacity dispatches so far.
  int64_t capacity_ = 0, reallocations_ = 0, fixed_dispatches_ = 0;
  ExchangeCounters* counters_ = nullptr;
  // Bytes this rank's last plan sends to other ranks: a dispatch row (payload + meta), and the
  // rows it returns in combine.
  uint64_t peer_bytes(const std::vector<int64_t>& rows, size_t row_bytes) const;
  size_t dispatch_row_bytes() const { return dispatch_row_bytes(hidden_, top_k_, payload_); }

 public:
  // One token's row to one peer in dispatch: its hidden state in the payload dtype, then its k
  // expert ids and k weights (f32); combine returns the hidden state alone. (inspect's plan.)
  static size_t dispatch_row_bytes(int64_t hidden, int64_t top_k, DType payload) {
    return size_t(hidden) * dtype_size(payload) + size_t(2 * top_k) * sizeof(float);
  }
  static size_t combine_row_bytes(int64_t hidden, DType payload) {
    return size_t(hidden) * dtype_size(payload);
  }
};

}  // namespace qwen3moe
