// A MoE layer's feed-forward on backend memory, the same at every world size: router top-k on
// this rank's tokens -> ExpertDispatch::dispatch (the identity at world 1) -> the local experts
// over what arrived (moe_align, moe_swiglu, moe_matmul) -> add_expert_outputs -> combine, so the
// residual rows of this rank's tokens end with their MoE output added. The host reads only each
// dispatch's per-rank counts (and, while profiling or counting, the experts' offsets).
#pragma once

#include <cstdint>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/model/workspace.h"
#include "kernels/backend.h"
#include "parallel/comm/communicator.h"
#include "parallel/moe/expert_dispatch.h"
#include "parallel/profile/a2a_profiler.h"
#include "parallel/topology.h"

namespace qwen3moe {

// One MoE layer's weights on the backend: this rank's experts as device tables.
struct MoeWeights {
  const float* post_norm = nullptr;  // [H] the layer's post-attention RMSNorm
  Weight router;                     // [E, H] replicated
  ExpertWeights gate, up, down;      // this rank's experts: [I, H], [I, H], [H, I] each
};

class MoeLayer {
 public:
  // comm carries backend memory (the model's collectives).
  MoeLayer(const ModelConfig& config, Backend& backend, Communicator& comm, const Topology& topo);

  // Sizes the dispatcher for up to `tokens_per_rank` tokens per rank per step.
  void reserve(int64_t tokens_per_rank) { dispatch_.reserve(tokens_per_rank); }
  void set_payload_dtype(DType dtype) { dispatch_.set_payload_dtype(dtype); }

  // The fixed-capacity exchange for steps of at most `tokens_per_rank` tokens per rank (0: off).
  void set_capacity(int64_t tokens_per_rank) { dispatch_.set_capacity(tokens_per_rank); }
  // Whether a step whose ranks have at most `most` tokens each reads nothing on the host.
  bool graph_safe(int64_t most) const { return !count_ && dispatch_.fixed(most); }
  int64_t reallocations() const { return dispatch_.reallocations(); }
  int64_t fixed_dispatches() const { return dispatch_.fixed_dispatches(); }

  // residual [mine, H]: this rank's tokens (all T at world 1); most: the most tokens any rank
  // has (the same on every rank); T: the step's tokens on all ranks (bounds the pairs).
  // Collective at world > 1.
  void forward(int64_t layer, const MoeWeights& w, float* residual, int64_t mine, int64_t most,
               int64_t T, Workspace& ws, A2aProfiler* profiler);

  // Counts, per forward, the local experts that got tokens (a download per layer).
  void count_active_experts(bool on) {
    count_ = on;
    if (on) counted_ = 0;
  }
  bool counting() const { return count_; }
  int64_t active_experts_counted() const { return counted_; }
  // The always-on exchange totals of this rank (parallel/moe/exchange_counters.h).
  const ExchangeCounters& exchange_counters() const { return counters_; }

 private:
  void run_experts(int64_t layer, const MoeWeights& w, const DispatchHandle& handle, int64_t T,
                   Workspace& ws, A2aProfiler* profiler);

  const ModelConfig& config_;
  Backend& backend_;
  const Topology& topo_;
  ExchangeCounters counters_;
  // The expert offsets are host memory (a CPU backend): per-expert tokens cost a copy, so always
  // on.
  bool host_offsets_cheap_;
  ExpertDispatch dispatch_;
  bool count_ = false;
  int64_t counted_ = 0;
  std::vector<int32_t> host_offsets_;  // [local experts + 1] while profiling or counting
};

}  // namespace qwen3moe
