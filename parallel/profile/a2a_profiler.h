// The all-to-all profiler: every dispatch/combine of every rank, split into the wait for the
// slowest peer (until the counts exchange completes) and the data transfer, with the bytes sent
// to each peer; the tokens each local expert received; and spans of the other phases of a step
// (attention, experts) for the trace. Recording is cheap and local; write() gathers all ranks'
// records on rank 0 and writes DIR/a2a.json, DIR/trace.json and DIR/report.html.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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
  // Work queued on an asynchronous device (a CUDA stream) is timed by waiting for it at each
  // span's start and end, so a span holds its kernels' device time, not their launch time.
  // The model sets its backend's synchronize while profiling; without it spans are host time.
  void set_device_sync(std::function<void()> sync) { device_sync_ = std::move(sync); }
  void sync_device() const {
    if (device_sync_) device_sync_();
  }
  void record_exchange(int64_t layer, const char* phase, const std::vector<size_t>& bytes_to,
                       double start_us, double wait_us, double transfer_us);
  // count token-expert pairs routed to `expert` (a global expert id) in `layer`.
  void record_expert_tokens(int64_t layer, int64_t expert, int64_t count);
  void record_span(const char* name, int64_t layer, double start_us, double dur_us);

  // Collective: every rank calls it; rank 0 writes the files (creating dir).
  // whatif_redundant: R extra copies of the hottest experts in the placement what-if.
  void write(Communicator& comm, const std::string& dir, int whatif_redundant = 0) const;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int64_t num_experts() const { return num_experts_; }
  const std::vector<bool>& moe_layer() const { return moe_layer_; }
  const std::vector<A2aExchange>& exchanges() const { return exchanges_; }
  const std::vector<A2aSpan>& spans() const { return spans_; }
  // [layer][expert] token-expert pairs counted on this rank.
  const std::vector<std::vector<int64_t>>& expert_tokens() const { return expert_tokens_; }

 private:
  int rank_, world_;
  int64_t num_experts_;
  std::vector<bool> moe_layer_;
  int64_t step_ = 0;
  std::chrono::steady_clock::time_point epoch_;
  double offset_us_ = 0;  // added to local time to get rank 0's clock
  std::vector<A2aExchange> exchanges_;
  std::vector<A2aSpan> spans_;
  std::vector<std::vector<int64_t>> expert_tokens_;
  std::function<void()> device_sync_;
};

// RAII span: records [construction, destruction) when the profiler is set, and is an NVTX
// range for Nsight either way.
class ProfileSpan {
 public:
  ProfileSpan(A2aProfiler* p, const char* name, int64_t layer)
      : nvtx_(name, layer), p_(p), name_(name), layer_(layer), start_(begin(p)) {}
  ~ProfileSpan() {
    if (!p_) return;
    p_->sync_device();
    p_->record_span(name_, layer_, start_, p_->now_us() - start_);
  }
  ProfileSpan(const ProfileSpan&) = delete;
  ProfileSpan& operator=(const ProfileSpan&) = delete;

 private:
  static double begin(A2aProfiler* p) {
    if (!p) return 0;
    p->sync_device();  // what was queued before the span is not the span's
    return p->now_us();
  }
  NvtxRange nvtx_;
  A2aProfiler* p_;
  const char* name_;
  int64_t layer_;
  double start_;
};

}  // namespace qwen3moe
