// The all-to-all profiler: every dispatch/combine of every rank, split into the wait for the
// slowest peer (until the counts exchange completes) and the data transfer, with the bytes sent
// to each peer; the tokens each local expert received; and spans of the other phases of a step
// (attention, experts) for the trace. Recording is cheap and local; write() gathers all ranks'
// records on rank 0 and writes DIR/a2a.json, DIR/trace.json and DIR/report.html.
//
// Time on an asynchronous device comes from marks on its own timeline (Backend::timestamp: CUDA
// events), not from a wait per span: a step's first mark waits once for the device to be idle
// and ties the device clock to the host's; end_step() resolves the step's marks (one wait for
// its last) into the records. Memory is bounded over a long run: with max_steps N, the detail of
// the last N to 2N steps is kept and older steps are folded, collectively, into running totals
// per (layer, phase) that still hold every exchange's slowest rank.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"
#include "parallel/profile/nvtx_range.h"

namespace qwen3moe {

struct A2aExchange {
  int64_t step = 0;
  int64_t layer = 0;
  std::string phase;               // "dispatch" | "combine"
  std::vector<uint64_t> bytes_to;  // [world] bytes this rank sent to each peer
  double start_us = 0;             // on the job's common clock
  double wait_us = 0;              // counts exchange: waiting for the slowest peer
  double transfer_us = 0;          // moving the data
};

// The exchanges of one (layer, phase) folded out of the detail (A2aProfiler::end_step).
struct A2aFolded {
  int64_t exchanges = 0;
  double wait_us = 0, transfer_us = 0;  // this rank's sums
  double slowest_us = 0;  // sum over the exchanges of the slowest rank's wait + transfer (job-wide)
  std::vector<uint64_t> bytes_to;  // [world] this rank's sums
};

// A point in time: a mark on the device's timeline (id >= 0, resolved at end_step) or a host
// time on the job's clock.
struct A2aMark {
  int64_t id = -1;
  double host_us = 0;
};

struct A2aSpan {
  int64_t step = 0;
  int64_t layer = -1;
  std::string name;  // "attention" | "experts" | "dense_mlp" | "lm_head" | ...
  double start_us = 0;
  double dur_us = 0;
};

class A2aProfiler {
 public:
  // moe_layer[l]: whether layer l is a MoE layer (dense layers are listed with zero traffic).
  A2aProfiler(int rank, int world, int64_t num_experts, std::vector<bool> moe_layer);

  // Aligns this rank's clock with rank 0's (call once on every rank, collectively).
  void sync_clock(Communicator& comm);
  double now_us() const;

  void set_step(int64_t step) { step_ = step; }
  int64_t step() const { return step_; }
  // The backend whose queued work the marks time (the model's, while profiling); without one,
  // marks are host time.
  void set_device_clock(Backend* backend);
  // Keep the detail of the last `steps` steps (to 2 x steps before a fold); 0: every step.
  void set_max_steps(int64_t steps);
  int64_t max_steps() const { return max_steps_; }

  A2aMark mark();
  // An exchange from `start` to `end`, waiting for peers until `counted` (the counts exchange
  // done; = start without one).
  void record_exchange(int64_t layer, const char* phase, const std::vector<size_t>& bytes_to,
                       A2aMark start, A2aMark counted, A2aMark end);
  void record_span(const char* name, int64_t layer, A2aMark start, A2aMark end);
  // The same with times already on the job's clock.
  void record_exchange(int64_t layer, const char* phase, const std::vector<size_t>& bytes_to,
                       double start_us, double wait_us, double transfer_us);
  void record_span(const char* name, int64_t layer, double start_us, double dur_us);
  // count token-expert pairs routed to `expert` (a global expert id) in `layer`.
  void record_expert_tokens(int64_t layer, int64_t expert, int64_t count);
  // Resolves the marks recorded so far into exchanges() and spans() (waits for the device).
  void flush();
  // The end of one forward, on every rank (collective when it folds): flush(), then with
  // max_steps N and 2N steps in detail, the oldest N are folded into folded().
  void end_step(Communicator& comm);

  // Collective: every rank calls it; rank 0 writes the files (creating dir).
  // whatif_redundant: R extra copies of the hottest experts in the placement what-if.
  void write(Communicator& comm, const std::string& dir, int whatif_redundant = 0) const;

  int rank() const { return rank_; }
  int world() const { return world_; }
  // Attention data parallelism: ranks form DP groups of tp consecutive ranks (the report labels
  // ranks by group). Default: one group of the whole world.
  void set_tp(int tp) { tp_ = tp > 0 && world_ % tp == 0 ? tp : world_; }
  int tp() const { return tp_; }
  int64_t num_experts() const { return num_experts_; }
  const std::vector<bool>& moe_layer() const { return moe_layer_; }
  // The detail kept (after flush()).
  const std::vector<A2aExchange>& exchanges() const { return exchanges_; }
  const std::vector<A2aSpan>& spans() const { return spans_; }
  // [layer * 2 + (0 dispatch, 1 combine)] what was folded out of the detail; the steps folded.
  const std::vector<A2aFolded>& folded() const { return folded_; }
  int64_t folded_steps() const { return folded_steps_; }
  // [layer][expert] token-expert pairs counted on this rank.
  const std::vector<std::vector<int64_t>>& expert_tokens() const { return expert_tokens_; }

 private:
  int rank_, world_;
  int tp_ = world_;
  int64_t num_experts_;
  std::vector<bool> moe_layer_;
  int64_t step_ = 0;
  std::chrono::steady_clock::time_point epoch_;
  double offset_us_ = 0;  // added to local time to get rank 0's clock
  void fold(size_t exchanges, Communicator& comm);
  double resolve(const A2aMark& m) const;

  std::vector<A2aExchange> exchanges_;
  std::vector<A2aSpan> spans_;
  std::vector<std::vector<int64_t>> expert_tokens_;
  // Device marks: the records waiting for end_step, and the step's first mark, whose host time
  // was taken with the device idle.
  Backend* device_ = nullptr;
  struct PendingExchange {
    A2aExchange e;
    A2aMark start, counted, end;
  };
  struct PendingSpan {
    A2aSpan s;
    A2aMark start, end;
  };
  std::vector<PendingExchange> pending_exchanges_;
  std::vector<PendingSpan> pending_spans_;
  A2aMark anchor_;
  bool anchored_ = false;
  // The detail ring: where each forward's records end in exchanges_ and spans_.
  int64_t max_steps_ = 0;
  std::vector<std::pair<size_t, size_t>> forward_end_;
  std::vector<A2aFolded> folded_;
  int64_t folded_steps_ = 0, last_folded_step_ = -1;
};

// RAII span: records [construction, destruction) when the profiler is set (marks: the device
// time of the work queued inside it), and is an NVTX range for Nsight either way.
class ProfileSpan {
 public:
  ProfileSpan(A2aProfiler* p, const char* name, int64_t layer)
      : nvtx_(name, layer), p_(p), name_(name), layer_(layer), start_(p ? p->mark() : A2aMark{}) {}
  ~ProfileSpan() {
    if (p_) p_->record_span(name_, layer_, start_, p_->mark());
  }
  ProfileSpan(const ProfileSpan&) = delete;
  ProfileSpan& operator=(const ProfileSpan&) = delete;

 private:
  NvtxRange nvtx_;
  A2aProfiler* p_;
  const char* name_;
  int64_t layer_;
  A2aMark start_;
};

}  // namespace qwen3moe
