// Recording side of the profiler. The writers (a2a.json, trace.json, report.html) live in
// a2a_report.cpp.
#include "parallel/profile/a2a_profiler.h"

#include <algorithm>
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
  A2aFolded none;
  none.bytes_to.assign(size_t(world), 0);
  folded_.assign(2 * moe_layer_.size(), none);
}

void A2aProfiler::set_device_clock(Backend* backend) {
  flush();
  device_ = backend;
}

void A2aProfiler::set_max_steps(int64_t steps) {
  QWEN3MOE_CHECK(steps >= 0, "profiler: keep ", steps, " steps");
  max_steps_ = steps;
}

A2aMark A2aProfiler::mark() {
  if (!device_) return {-1, now_us()};
  if (!anchored_) {
    // The step's first mark: with nothing queued, the device reaches it at the host's now.
    device_->synchronize();
    anchor_.host_us = now_us();
    anchor_.id = device_->timestamp();
    anchored_ = true;
    return anchor_;
  }
  return {device_->timestamp(), 0};
}

double A2aProfiler::resolve(const A2aMark& m) const {
  if (m.id < 0) return m.host_us;
  QWEN3MOE_CHECK(device_ && anchored_, "profiler: a device mark without its step's anchor");
  return anchor_.host_us + device_->elapsed_us(anchor_.id, m.id);
}

void A2aProfiler::flush() {
  for (PendingExchange& p : pending_exchanges_) {
    const double start = resolve(p.start), counted = resolve(p.counted), end = resolve(p.end);
    p.e.start_us = start;
    p.e.wait_us = counted - start;
    p.e.transfer_us = end - counted;
    exchanges_.push_back(std::move(p.e));
  }
  for (PendingSpan& p : pending_spans_) {
    p.s.start_us = resolve(p.start);
    p.s.dur_us = resolve(p.end) - p.s.start_us;
    spans_.push_back(std::move(p.s));
  }
  pending_exchanges_.clear();
  pending_spans_.clear();
  if (device_ && anchored_) device_->clear_timestamps();
  anchored_ = false;
}

void A2aProfiler::end_step(Communicator& comm) {
  flush();
  if (max_steps_ == 0) return;  // every step stays in detail
  forward_end_.emplace_back(exchanges_.size(), spans_.size());
  if (forward_end_.size() < size_t(2 * max_steps_)) return;
  const size_t folding = forward_end_.size() - size_t(max_steps_);
  const auto [ex_cut, span_cut] = forward_end_[folding - 1];
  fold(ex_cut, comm);
  spans_.erase(spans_.begin(), spans_.begin() + long(span_cut));
  forward_end_.erase(forward_end_.begin(), forward_end_.begin() + long(folding));
  for (auto& [ex, sp] : forward_end_) {
    ex -= ex_cut;
    sp -= span_cut;
  }
}

void A2aProfiler::fold(size_t n, Communicator& comm) {
  // Every rank folds the same exchanges (they are collective): the counts must agree, then
  // each exchange's slowest rank comes from every rank's wait + transfer.
  const size_t W = size_t(world_);
  const uint64_t mine = n;
  std::vector<uint64_t> counts(W);
  comm.all_gather(&mine, counts.data(), sizeof(uint64_t));
  for (size_t k = 0; k < W; ++k)
    QWEN3MOE_CHECK(counts[k] == mine, "profiler: rank ", k, " folds ", counts[k],
                   " exchanges, rank ", rank_, " ", mine, ": the ranks were not in lockstep");
  if (n == 0) return;
  std::vector<double> took(n), every(n * W);
  for (size_t i = 0; i < n; ++i) took[i] = exchanges_[i].wait_us + exchanges_[i].transfer_us;
  comm.all_gather(took.data(), every.data(), n * sizeof(double));
  for (size_t i = 0; i < n; ++i) {
    const A2aExchange& e = exchanges_[i];
    QWEN3MOE_CHECK(e.layer >= 0 && size_t(e.layer) < moe_layer_.size(),
                   "profiler: exchange of layer ", e.layer, " outside the model's ",
                   moe_layer_.size(), " layers");
    A2aFolded& f = folded_[size_t(e.layer) * 2 + (e.phase == "dispatch" ? 0 : 1)];
    double slowest = 0;
    for (size_t k = 0; k < W; ++k) slowest = std::max(slowest, every[k * n + i]);
    ++f.exchanges;
    f.wait_us += e.wait_us;
    f.transfer_us += e.transfer_us;
    f.slowest_us += slowest;
    for (size_t p = 0; p < W && p < e.bytes_to.size(); ++p) f.bytes_to[p] += e.bytes_to[p];
    if (e.step != last_folded_step_) ++folded_steps_;
    last_folded_step_ = e.step;
  }
  exchanges_.erase(exchanges_.begin(), exchanges_.begin() + long(n));
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

void A2aProfiler::record_exchange(int64_t layer, const char* phase,
                                  const std::vector<size_t>& bytes_to, A2aMark start,
                                  A2aMark counted, A2aMark end) {
  PendingExchange p;
  p.e.step = step_;
  p.e.layer = layer;
  p.e.phase = phase;
  p.e.bytes_to.assign(bytes_to.begin(), bytes_to.end());
  p.start = start;
  p.counted = counted;
  p.end = end;
  pending_exchanges_.push_back(std::move(p));
  if (!device_) flush();  // host times: nothing to wait for
}

void A2aProfiler::record_span(const char* name, int64_t layer, A2aMark start, A2aMark end) {
  pending_spans_.push_back({{step_, layer, name, 0, 0}, start, end});
  if (!device_) flush();
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
