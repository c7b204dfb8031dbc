// Always-on running totals of one rank's MoE exchanges, per layer, for monitoring (the serving
// /metrics): the bytes it sent to peers in dispatch and in combine (known on the host from the
// exchange's plan, so counting costs nothing on any backend), the wall time of those calls where
// the backend runs synchronously on the host (on a device the host only queues the work; time
// there comes from the a2a profiler's device marks), and the token-expert pairs each of its
// experts received where reading them is a host copy. The engine thread adds; any thread reads
// a snapshot (one mutex, taken a few times per layer per step, uncontended).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace qwen3moe {

struct LayerExchangeTotals {
  uint64_t dispatch_bytes = 0, combine_bytes = 0;  // sent to other ranks
  double dispatch_seconds = 0, combine_seconds = 0;
  uint64_t exchanges = 0;               // dispatches counted
  std::vector<uint64_t> expert_tokens;  // [num_experts] global ids; this rank's experts only
};

class ExchangeCounters {
 public:
  // layers: the model's layer count (dense layers stay zero); timed: whether the host's wall
  // time of an exchange is its real duration; experts: num_experts.
  ExchangeCounters(int64_t layers, int64_t experts, bool timed);

  void add_dispatch(int64_t layer, uint64_t bytes, double seconds);
  void add_combine(int64_t layer, uint64_t bytes, double seconds);
  void add_expert_tokens(int64_t layer, int64_t expert, uint64_t n);

  bool timed() const { return timed_; }
  std::vector<LayerExchangeTotals> snapshot() const;

 private:
  bool timed_;
  mutable std::mutex mu_;
  std::vector<LayerExchangeTotals> layers_;
};

}  // namespace qwen3moe
