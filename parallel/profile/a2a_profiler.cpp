// Recording side of the profiler. The writers (a2a.json, trace.json, report.html) live in
// a2a_report.cpp.
#include "parallel/profile/a2a_profiler.h"

#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe {

A2aProfiler::A2aProfiler(int rank, int world, int64_t num_experts, std::vector<bool> moe_layer)
    : rank_(rank),
      world_(world),
      num_experts_(num_experts),
      moe_layer_(std::move(moe_layer)),
      epoch_(std::chrono::steady_clock::now()) {
  expert_tokens_.assign(moe_layer_.size(), std::vector<int64_t>(size_t(num_experts), 0));
}

double A2aProfiler::now_us() const {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - epoch_)
             .count() +
         offset_us_;
}

void A2aProfiler::sync_clock(Communicator& comm) {
  // Rank 0's clock is the job's. Each rank pings rank 0 through a broadcast round trip several
  // times and keeps the estimate from the fastest round (least queueing), as NTP does.
  offset_us_ = 0;
  if (comm.size() == 1) return;
  double best_rtt = 1e30, best_offset = 0;
  for (int round = 0; round < 8; ++round) {
    comm.barrier();
    const double t0 = now_us();
    double root_time = now_us();
    comm.broadcast(&root_time, sizeof(root_time), 0);
    const double t1 = now_us();
    comm.barrier();  // a second barrier so the root's send is not queued behind the next round
    if (rank_ == 0) continue;
    if (t1 - t0 < best_rtt) {
      best_rtt = t1 - t0;
      best_offset = root_time - (t0 + t1) / 2;
    }
  }
  offset_us_ = rank_ == 0 ? 0 : best_offset;
}

void A2aProfiler::record_exchange(int64_t layer, const char* phase,
                                  const std::vector<size_t>& bytes_to, double start_us,
                                  double wait_us, double transfer_us) {
  A2aExchange e;
  e.step = step_;
  e.layer = layer;
  e.phase = phase;
  e.bytes_to.assign(bytes_to.begin(), bytes_to.end());
  e.start_us = start_us;
  e.wait_us = wait_us;
  e.transfer_us = transfer_us;
  exchanges_.push_back(std::move(e));
}

void A2aProfiler::record_expert_tokens(int64_t layer, int64_t expert, int64_t count) {
  QWEN3MOE_CHECK(
      layer >= 0 && size_t(layer) < expert_tokens_.size() && expert >= 0 && expert < num_experts_,
      "profiler: expert ", expert, " of layer ", layer, " out of range");
  expert_tokens_[size_t(layer)][size_t(expert)] += count;
}

void A2aProfiler::record_span(const char* name, int64_t layer, double start_us, double dur_us) {
  spans_.push_back({step_, layer, name, start_us, dur_us});
}

}  // namespace qwen3moe
