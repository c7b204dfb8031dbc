// The Qwen3 / Qwen3-MoE forward, equal to Hugging Face's Qwen3ForCausalLM and
// Qwen3MoeForCausalLM (tests/fixtures hold their float64 logits), written against Backend for the
// math and Communicator + Topology for the split across ranks, so the same code runs on one CPU
// process or many GPUs. It holds this rank's slice of the weights and a workspace that grows
// only when a batch is larger than any before it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "core/model/graph_cache.h"
#include "core/model/kv_cache.h"
#include "core/model/moe_layer.h"
#include "core/model/weights.h"
#include "core/model/workspace.h"
#include "kernels/backend.h"
#include "kernels/common/split.h"
#include "parallel/comm/communicator.h"
#include "parallel/profile/a2a_profiler.h"
#include "parallel/topology.h"

namespace qwen3moe {

// One step's tokens, from one or more sequences, prefill and decode mixed.
struct StepBatch {
  std::vector<int32_t> tokens;        // [T]
  std::vector<int32_t> positions;     // [T] position of each token in its sequence
  std::vector<int32_t> token_seq;     // [T] which sequence (row of block_tables)
  std::vector<int32_t> slots;         // [T] KV-cache slot each token's K/V goes to
  std::vector<int32_t> block_tables;  // [S, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  std::vector<int32_t> logit_rows;  // tokens whose logits are returned, in this order
  // [dp] tokens of every DP group's batch this step, this group's (T) included; a group with
  // none still joins every MoE exchange. Empty: one group (dp 1).
  std::vector<int32_t> group_tokens;
  // A shape the caller repeats (padded to a bucket, fixed table width): with graphs on, run as
  // a captured graph; false: always op by op (a capture per one-off shape would only cost).
  bool replayable = true;
};

// Weights made on the backend itself (Backend::fill_random), no checkpoint: the benchmarks of
// models too large to write to disk or copy through the host. Uniform values with the spreads
// of core/random_checkpoint (matrices 1/sqrt(fan_in), router 1, norms 1 +- 0.2).
struct RandomWeights {
  uint64_t seed = 0;
};

class Model {
 public:
  // comm carries the collectives on backend memory (the hidden states); host_comm those on
  // host memory (expert dispatch, the logits gather). With the CPU backend they are one
  // communicator; with CUDA, comm is NCCL, host-staged MPI or the local device communicator.
  // progress: a bar on stderr while this rank's weights load (rank 0 of an interactive run).
  Model(const ModelConfig& config, const WeightStore& weights, Backend& backend, Communicator& comm,
        Communicator& host_comm, const Topology& topo, bool progress = false)
      : Model(config, &weights, 0, backend, comm, host_comm, topo, progress) {}
  // Both on `comm`: a backend whose memory is host memory (the CPU backend).
  Model(const ModelConfig& config, const WeightStore& weights, Backend& backend, Communicator& comm,
        const Topology& topo)
      : Model(config, weights, backend, comm, comm, topo) {}
  // Weights made on the backend (benchmarks of models too large for a file or a host copy).
  Model(const ModelConfig& config, const RandomWeights& random, Backend& backend,
        Communicator& comm, Communicator& host_comm, const Topology& topo, bool progress = false)
      : Model(config, nullptr, random.seed, backend, comm, host_comm, topo, progress) {}
  Model(const ModelConfig& config, const RandomWeights& random, Backend& backend,
        Communicator& comm, const Topology& topo)
      : Model(config, random, backend, comm, comm, topo) {}
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const Topology& topology() const { return topo_; }
  Backend& backend() { return backend_; }
  // Bytes of the weights this rank reads through the backend (its slices only).
  size_t resident_weight_bytes() const { return weights_->resident_bytes(); }
  // Bytes of weights one decode token reads on this rank: attention, dense MLPs, top-k of the
  // local experts on average, the lm_head slice. For bandwidth figures.
  size_t active_weight_bytes_per_token() const;

  // With DP groups (topology dp > 1): the communicators of this rank's group of tp ranks, on
  // backend and on host memory, for attention, the dense MLPs and the vocabulary; the MoE
  // exchange stays on the world's. Before the first forward; both must outlive the model.
  void set_attention_group(Communicator& tp, Communicator& host_tp);

  // Runs the batch, writing its K/V into cache; logits [logit_rows, vocab] in host memory.
  // With DP groups every rank runs its group's batch (possibly empty) in the same step.
  void forward(const StepBatch& batch, KvCache& cache, std::vector<float>& logits);

  // Records the phases and exchanges of every step (nullptr: off), timed by marks on the
  // backend's timeline and resolved (and the detail ring folded) at the end of each forward.
  void set_profiler(A2aProfiler* profiler) {
    if (profiler_) profiler_->set_device_clock(nullptr);
    profiler_ = profiler;
    if (profiler_) profiler_->set_device_clock(&backend_);
  }
  // The number of the step the next forward belongs to, for the profiler's records and the
  // collectives' hang reports (the serving engine numbers its steps; generate its forwards).
  void set_step(int64_t step) {
    comm_.set_step(step);
    host_comm_.set_step(step);
    tp_comm_->set_step(step);
    host_tp_comm_->set_step(step);
    if (profiler_) profiler_->set_step(step);
  }
  // Which layers are MoE layers, for the profiler.
  std::vector<bool> moe_layers() const;

  // While on, the MoE layers count the local experts each forward's tokens select (a download per
  // layer: for benchmarks' byte counts, never timed). Turning it on resets the count.
  void count_active_experts(bool on);
  // Experts with at least one token, summed over the MoE layers of the counted forwards.
  int64_t active_experts_counted() const { return moe_ ? moe_->active_experts_counted() : 0; }
  // From the second forward of a shape on (tokens, block-table width, logit rows), replay a
  // captured backend graph of the whole step instead of issuing every op (CUDA graphs; a
  // no-op on the CPU). At world > 1 only steps that read nothing on the host between layers
  // qualify: a communicator graphs can hold (NCCL) and, with MoE layers, steps within the
  // fixed a2a capacity. Callers keep the block-table width fixed so steps share one.
  void set_graphs(bool on) { graphs_ = on; }
  // Distinct step shapes the graph cache has run (graphs on): how well callers pad.
  size_t graph_shapes() const { return graphs_cache_.shapes(); }
  // World > 1: the MoE exchange's fixed capacity in tokens per rank (0: off; ExpertDispatch):
  // steps of at most that many tokens on every rank exchange no counts. Collective.
  void set_a2a_capacity(int64_t tokens_per_rank);
  // The workspace's token rows for steps of up to `step_tokens` tokens in one DP group: every
  // rank's share of the world's tokens, which the MoE exchange may hand this rank.
  static int64_t workspace_tokens(const Topology& topo, int64_t step_tokens) {
    return topo.world() > 1 ? ceil_div(step_tokens, int64_t(topo.tp())) * topo.world()
                            : step_tokens;
  }
  // The forward's workspace for `tokens` token rows (workspace_tokens; memory planning:
  // inspect, and serve before it sizes the KV cache from what is left).
  static WorkspaceShape workspace_shape(const ModelConfig& config, const Topology& topo,
                                        int64_t tokens, int64_t a2a_capacity);
  // Allocates now what steps of up to `tokens` tokens (per DP group) need (no growth at the
  // first such step).
  void reserve_for(int64_t tokens);
  // MoE dispatches so far that took the fixed-capacity exchange (tests).
  int64_t fixed_dispatches() const { return moe_ ? moe_->fixed_dispatches() : 0; }
  // This rank's always-on MoE exchange totals (null for a dense model); any thread may read.
  const ExchangeCounters* exchange_counters() const {
    return moe_ ? &moe_->exchange_counters() : nullptr;
  }
  // The MoE all-to-all's row payload across ranks: F32 (default, exact) or BF16 (half the
  // bytes; see ExpertDispatch). No effect at world 1 (nothing is exchanged).
  void set_a2a_dtype(DType dtype) {
    if (moe_) moe_->set_payload_dtype(dtype);
    graphs_cache_.clear();  // captured exchanges move the old dtype's rows
  }

 private:
  // store: the checkpoint, or null for weights made on the backend from random_seed.
  Model(const ModelConfig& config, const WeightStore* store, uint64_t random_seed, Backend& backend,
        Communicator& comm, Communicator& host_comm, const Topology& topo, bool progress);
  // scatter: leave the attention output reduce-scattered over the ranks' token slices in ws_.xs
  // (a MoE layer follows) instead of all-reduced into ws_.x.
  void attention_block(int64_t layer, int64_t T, KvCache& cache, bool scatter);
  void mlp_block(int64_t layer, int64_t T);
  // The MoE feed-forward of this rank's tokens (MoeLayer), then the all-gather that makes the
  // hidden state whole again across ranks.
  void moe_block(int64_t layer, int64_t T);
  // Embedding to lm_head of one step whose inputs are uploaded already: what a graph holds.
  // T may be 0 (a DP group without work this step): then only the MoE exchanges run.
  void run_layers(int64_t T, int64_t logit_rows, KvCache& cache);
  // The sharding checks, this rank's weights, and the MoE layer when the model has one.
  void load_weights(bool progress);
  void reserve(int64_t tokens, int64_t seqs_x_blocks);

  ModelConfig config_;
  const WeightStore* store_ = nullptr;  // null: RandomWeights
  uint64_t random_seed_ = 0;
  Backend& backend_;
  Communicator& comm_;       // backend memory
  Communicator& host_comm_;  // host memory
  // This rank's DP group (the world at dp 1): backend and host memory.
  Communicator* tp_comm_ = &comm_;
  Communicator* host_tp_comm_ = &host_comm_;
  // Of the step in forward: the most tokens one rank holds for the MoE (the same on every rank).
  int64_t most_per_rank_ = 0;
  Topology topo_;
  std::unique_ptr<ModelWeights> weights_;  // this rank's slices (core/model/weights.h)

  Workspace ws_;                      // the forward's scratch, one arena (core/model/workspace.h)
  const StepBatch* batch_ = nullptr;  // during forward
  bool graphs_ = false;
  GraphCache graphs_cache_;        // the captured steps, one per shape
  int64_t moe_reallocations_ = 0;  // the MoE dispatcher's, when graphs_cache_ last held
  int64_t a2a_capacity_ = 0;       // tokens per rank (set_a2a_capacity)
  std::unique_ptr<MoeLayer> moe_;  // the MoE layers' feed-forward and its dispatcher
  A2aProfiler* profiler_ = nullptr;
  // Host staging of the vocabulary-parallel logits gather: [L, per] mine, [W, L, per] all.
  std::vector<float> host_logits_mine_, host_logits_all_;
};

}  // namespace qwen3moe
