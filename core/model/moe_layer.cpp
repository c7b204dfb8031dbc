#include "core/model/moe_layer.h"

#include <algorithm>

namespace qwen3moe {

MoeLayer::MoeLayer(const ModelConfig& config, Backend& backend, Communicator& comm,
                   const Topology& topo)
    : config_(config),
      backend_(backend),
      topo_(topo),
      counters_(config.num_hidden_layers, config.num_experts, backend.name() == "cpu"),
      host_offsets_cheap_(backend.name() == "cpu"),
      dispatch_(backend, comm, topo, config.hidden_size, config.num_experts_per_tok) {
  dispatch_.set_counters(&counters_);
}

void MoeLayer::forward(int64_t l, const MoeWeights& w, float* residual, int64_t mine, int64_t most,
                       int64_t T, Workspace& ws, A2aProfiler* profiler) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, E = c.num_experts, k = c.num_experts_per_tok;
  float* h = dispatch_.input(mine);  // [mine, H] normalized rows, written where dispatch sends them
  if (mine > 0) {
    ProfileSpan span(profiler, "router", l);
    backend_.rmsnorm(h, residual, w.post_norm, mine, H, float(c.rms_norm_eps));
    backend_.matmul(ws.router_logits, h, w.router, mine);  // [mine, E]
    backend_.router_topk(ws.topk_ids, ws.topk_w, ws.router_logits, mine, E, k, c.norm_topk_prob);
  }
  const DispatchHandle handle =
      dispatch_.dispatch(mine, most, ws.topk_ids, ws.topk_w, residual, l, profiler);
  run_experts(l, w, handle, T, ws, profiler);
  dispatch_.combine(handle, profiler);
}

void MoeLayer::run_experts(int64_t l, const MoeWeights& w, const DispatchHandle& handle, int64_t T,
                           Workspace& ws, A2aProfiler* profiler) {
  ProfileSpan span(profiler, "experts", l);
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size, k = c.num_experts_per_tok, El = topo_.experts_per_rank();
  const int64_t R = handle.rows;
  if (R == 0) return;
  // Pairs of the rows with this rank's experts, sorted by expert: ws.moe_idx[R*k] each pair's
  // row, ws.moe_pos[R, k] where each (row, j) went. No more than T*k pairs exist (each of the
  // step's tokens sends each of its k pairs to one rank), and no expert has more than
  // min(R, T) rows: the bounds that size the launches without reading the offsets.
  backend_.moe_align(ws.moe_offsets, ws.moe_idx, ws.moe_pos, ws.moe_active, handle.ids, R, k, El);
  const int64_t P = std::min(R, T) * k, per_expert = std::min(R, T);
  if (count_ || profiler || host_offsets_cheap_) {
    host_offsets_.resize(size_t(El + 1));
    backend_.download(host_offsets_.data(), ws.moe_offsets, host_offsets_.size() * 4);
    for (int64_t e = 0; e < El; ++e) {
      const int64_t n = host_offsets_[size_t(e + 1)] - host_offsets_[size_t(e)];
      if (count_) counted_ += n > 0;
      if (profiler) profiler->record_expert_tokens(l, topo_.expert_begin() + e, n);
      if (n > 0) counters_.add_expert_tokens(l, topo_.expert_begin() + e, uint64_t(n));
    }
  }
  backend_.gather_rows(ws.rows, handle.row_data, ws.moe_idx, P, H);  // [P, H]
  // act = silu(rows · gate^T) * (rows · up^T): [P, I]
  backend_.moe_swiglu(ws.act, ws.gate, ws.up, ws.rows, w.gate, w.up, ws.moe_offsets, ws.moe_active,
                      El, P, per_expert);
  backend_.moe_matmul(ws.down, ws.act, w.down, ws.moe_offsets, ws.moe_active, El, P,
                      per_expert);  // [P, H]
  // sum_j w[r, j] * down[pos[r, j]] per row: own rows into the residual, peers' for combine.
  add_expert_outputs(backend_, handle, ws.down, ws.moe_pos, k, H);
}

}  // namespace qwen3moe
