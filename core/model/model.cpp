#include "core/model/model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/checkpoint/layout.h"
#include "kernels/common/check.h"
#include "kernels/common/split.h"

namespace qwen3moe {

Model::Model(const ModelConfig& config, const WeightStore* store, uint64_t random_seed,
             Backend& backend, Communicator& comm, Communicator& host_comm, const Topology& topo,
             bool progress)
    : config_(config),
      store_(store),
      random_seed_(random_seed),
      backend_(backend),
      comm_(comm),
      host_comm_(host_comm),
      topo_(topo),
      ws_(backend),
      graphs_cache_(backend) {
  load_weights(progress);
}

void Model::load_weights(bool progress) {
  QWEN3MOE_CHECK(topo_.world() == comm_.size(), "the topology's world of ", topo_.world(),
                 " ranks is not the communicator's ", comm_.size());
  QWEN3MOE_CHECK(host_comm_.size() == comm_.size() && host_comm_.rank() == comm_.rank(),
                 "the host communicator (rank ", host_comm_.rank(), " of ", host_comm_.size(),
                 ") is not the device one's world (rank ", comm_.rank(), " of ", comm_.size(), ")");
  weights_ =
      std::make_unique<ModelWeights>(config_, store_, random_seed_, backend_, topo_, progress);
  // One MoE layer object (and dispatcher) for every MoE layer and world size.
  for (const LayerWeights& L : weights_->layers)
    if (L.moe && !moe_) moe_ = std::make_unique<MoeLayer>(config_, backend_, comm_, topo_);
}

void Model::set_attention_group(Communicator& tp, Communicator& host_tp) {
  QWEN3MOE_CHECK(tp.size() == topo_.tp() && tp.rank() == topo_.tp_rank() &&
                     host_tp.size() == tp.size() && host_tp.rank() == tp.rank(),
                 "the attention group's communicators (rank ", tp.rank(), " of ", tp.size(),
                 ", host rank ", host_tp.rank(), " of ", host_tp.size(), ") are not tp rank ",
                 topo_.tp_rank(), " of tp=", topo_.tp());
  tp_comm_ = &tp;
  host_tp_comm_ = &host_tp;
  graphs_cache_.clear();
}

std::vector<bool> Model::moe_layers() const {
  std::vector<bool> out;
  for (const LayerWeights& L : weights_->layers) out.push_back(L.moe);
  return out;
}

Model::~Model() = default;

size_t Model::active_weight_bytes_per_token() const {
  return weights_->active_bytes_per_token();
}

WorkspaceShape Model::workspace_shape(const ModelConfig& c, const Topology& topo, int64_t tokens,
                                      int64_t a2a_capacity) {
  const int64_t W = topo.world();
  // A multiple of the world size, so token slices of a reduce-scatter are equal.
  const int64_t N = ceil_div(std::max<int64_t>(tokens, 1), W) * W;
  const int64_t k = std::max<int64_t>(1, c.num_experts_per_tok);
  WorkspaceShape s;
  s.tokens = N;
  s.group_tokens = N / W * topo.tp();  // every group's batch fits: most x tp rows
  s.hidden = c.hidden_size;
  s.q_dim = topo.heads_per_rank() * c.head_dim;
  s.kv_dim = topo.kv_heads_per_rank() * c.head_dim;
  s.ffn = std::max(c.intermediate_size, k * c.moe_intermediate_size);
  s.top_k = k;
  s.experts = std::max<int64_t>(1, c.num_experts);
  s.vocab_local = topo.vocab_end() - topo.vocab_begin();
  // Expert input rows of one dispatch: own tokens, rows packed for the peers, the peers'
  // tokens (the dispatcher holds them; here: moe_align's pair slots, k per row); under a
  // fixed capacity C, C rows from every rank.
  s.dispatch_rows = std::max((2 * W - 1) * (N / W), W > 1 ? a2a_capacity * W : 0);
  return s;
}

void Model::reserve_for(int64_t tokens) {
  reserve(workspace_tokens(topo_, tokens), 0);
}

void Model::reserve(int64_t T, int64_t table_elems) {
  bool moved = false;  // buffers captured graphs point into were replaced
  const int64_t W = comm_.size(), fixed_rows = W > 1 ? a2a_capacity_ * W : 0;
  if (T > ws_.tokens() || fixed_rows > ws_.dispatch_rows()) {
    const int64_t N = T > ws_.tokens() ? std::max<int64_t>(T, 2 * ws_.tokens()) : ws_.tokens();
    const WorkspaceShape s = workspace_shape(config_, topo_, N, a2a_capacity_);
    ws_.allocate(s);
    const int64_t n = s.tokens;
    if (moe_) moe_->reserve(n / W);
    moved = true;
  }
  moved |= ws_.reserve_tables(table_elems);
  if (moved) graphs_cache_.clear();
}

void Model::forward(const StepBatch& b, KvCache& cache, std::vector<float>& logits) {
  const ModelConfig& c = config_;
  const int64_t T = int64_t(b.tokens.size());
  QWEN3MOE_CHECK(tp_comm_->size() == topo_.tp(), "tp=", topo_.tp(),
                 " is smaller than the world of ", comm_.size(),
                 " ranks: the model needs its DP group (set_attention_group)");
  // The step over the world: every group's tokens, and the most one rank holds after the
  // group's reduce-scatter, which every rank needs alike for the MoE exchange.
  const int64_t W = comm_.size(), tp = topo_.tp();
  int64_t world_tokens = 0;
  if (topo_.dp() == 1) {
    QWEN3MOE_CHECK(b.group_tokens.empty() || (b.group_tokens.size() == 1 && b.group_tokens[0] == T),
                   "forward: group_tokens does not match the batch of ", T, " tokens");
    world_tokens = T;
    most_per_rank_ = ceil_div(T, W);
  } else {
    QWEN3MOE_CHECK(int64_t(b.group_tokens.size()) == topo_.dp() &&
                       b.group_tokens[size_t(topo_.dp_rank())] == T,
                   "forward: group_tokens must hold the tokens of each of the ", topo_.dp(),
                   " DP groups, this group's being ", T);
    most_per_rank_ = 0;
    for (int32_t n : b.group_tokens) {
      QWEN3MOE_CHECK(n >= 0, "forward: a DP group of ", n, " tokens");
      world_tokens += n;
      most_per_rank_ = std::max(most_per_rank_, ceil_div(int64_t(n), tp));
    }
  }
  QWEN3MOE_CHECK(world_tokens > 0, "forward: empty batch");
  QWEN3MOE_CHECK(b.positions.size() == size_t(T) && b.token_seq.size() == size_t(T) &&
                     b.slots.size() == size_t(T),
                 "forward: tokens, positions, token_seq and slots differ in length");
  for (int64_t t = 0; t < T; ++t) {
    QWEN3MOE_CHECK(b.tokens[t] >= 0 && b.tokens[t] < c.vocab_size, "token id ", b.tokens[t],
                   " is outside the vocabulary [0, ", c.vocab_size, ")");
    QWEN3MOE_CHECK(b.positions[t] >= 0 && b.positions[t] < c.max_position_embeddings, "position ",
                   b.positions[t],
                   " is beyond max_position_embeddings=", c.max_position_embeddings);
  }
  // Room for every rank's share of the world's tokens: what the MoE exchange may hand this rank.
  reserve(W > 1 ? most_per_rank_ * W : T, int64_t(b.block_tables.size()));
  batch_ = &b;
  backend_.upload(ws_.token_ids, b.tokens.data(), size_t(T) * 4);
  backend_.upload(ws_.positions, b.positions.data(), size_t(T) * 4);
  backend_.upload(ws_.token_seq, b.token_seq.data(), size_t(T) * 4);
  backend_.upload(ws_.slots, b.slots.data(), size_t(T) * 4);
  backend_.upload(ws_.tables, b.block_tables.data(), b.block_tables.size() * 4);

  const int64_t L = int64_t(b.logit_rows.size());
  const int64_t vl = topo_.vocab_end() - topo_.vocab_begin();
  for (int32_t r : b.logit_rows)
    QWEN3MOE_CHECK(r >= 0 && r < T, "forward: logit row ", r, " outside the batch of ", T);
  if (L > 0) backend_.upload(ws_.logit_rows, b.logit_rows.data(), size_t(L) * 4);
  logits.assign(size_t(L * c.vocab_size), 0.0f);

  // From the second step of a shape on, the step is one graph replay, when nothing in it
  // waits for the host: at world > 1 the collectives must be graph-capturable and the MoE
  // exchange the fixed-capacity one (the counted one reads each dispatch's counts).
  const bool host_free = W == 1 ? !(moe_ && moe_->counting())
                                : comm_.graph_capturable() &&
                                      (tp_comm_->size() == 1 || tp_comm_->graph_capturable()) &&
                                      (!moe_ || moe_->graph_safe(most_per_rank_));
  if (graphs_ && b.replayable && host_free && !profiler_ && T > 0)
    graphs_cache_.run({T, b.max_blocks_per_seq, L, &cache, most_per_rank_},
                      [&] { run_layers(T, L, cache); });
  else
    run_layers(T, L, cache);
  if (profiler_) profiler_->end_step(host_comm_);  // on every rank: a forward is collective
  // A dispatcher buffer that grew in an eager step moved under the graphs captured so far.
  if (moe_ && moe_->reallocations() != moe_reallocations_) {
    moe_reallocations_ = moe_->reallocations();
    graphs_cache_.clear();
  }
  if (L == 0) {
    batch_ = nullptr;
    return;
  }
  if (tp == 1) {
    backend_.download(logits.data(), ws_.logits, logits.size() * sizeof(float));
  } else {
    // Every rank's slice is padded to the largest slice for the gather.
    const int64_t per = ceil_div(c.vocab_size, topo_.tp());
    // Kept between steps: no allocation per step once the largest batch has been seen. The
    // padding of a short slice is never read.
    std::vector<float>& mine = host_logits_mine_;
    std::vector<float>& all = host_logits_all_;
    mine.resize(size_t(L * per));
    all.resize(size_t(L * per * tp));
    for (int64_t r = 0; r < L; ++r)
      backend_.download(mine.data() + r * per, ws_.logits + r * vl, size_t(vl) * sizeof(float));
    host_tp_comm_->set_phase(-1, "logits");
    host_tp_comm_->all_gather(mine.data(), all.data(), mine.size() * sizeof(float));
    for (int p = 0; p < topo_.tp(); ++p) {
      const int64_t v0 = std::min<int64_t>(c.vocab_size, p * per);
      const int64_t vn = std::min<int64_t>(c.vocab_size, v0 + per) - v0;
      for (int64_t r = 0; r < L; ++r)
        std::copy_n(all.data() + (size_t(p) * size_t(L) + size_t(r)) * size_t(per), vn,
                    logits.data() + r * c.vocab_size + v0);
    }
  }
  batch_ = nullptr;
}

void Model::run_layers(int64_t T, int64_t L, KvCache& cache) {
  const ModelConfig& c = config_;
  const int64_t H = c.hidden_size;
  if (T == 0) {
    // A DP group without tokens this step: its ranks only join the world's MoE exchanges.
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
      if (weights_->layers[size_t(l)].moe) moe_block(l, 0);
    return;
  }
  Communicator& group = *tp_comm_;
  // Vocabulary-parallel embedding: each rank fills the rows of its slice, the sum completes it.
  backend_.embedding(ws_.x, weights_->embed, ws_.token_ids, T, topo_.vocab_begin());
  group.set_phase(-1, "embedding");
  if (group.size() > 1) group.all_reduce_sum(ws_.x, size_t(T * H));

  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const bool moe = weights_->layers[size_t(l)].moe;
    // Before a MoE layer across ranks, each rank of the group keeps only its slice of the
    // group's tokens.
    attention_block(l, T, cache, moe && comm_.size() > 1 && group.size() > 1);
    if (moe)
      moe_block(l, T);
    else
      mlp_block(l, T);
  }
  if (L == 0) return;
  backend_.gather_rows(ws_.h, ws_.x, ws_.logit_rows, L, H);
  backend_.rmsnorm(ws_.h, ws_.h, weights_->final_norm, L, H, float(c.rms_norm_eps));
  backend_.matmul(ws_.logits, ws_.h, weights_->lm_head, L);
}

void Model::set_a2a_capacity(int64_t tokens_per_rank) {
  if (moe_) moe_->set_capacity(tokens_per_rank);
  a2a_capacity_ = moe_ ? tokens_per_rank : 0;  // the workspace grows at the next forward
  graphs_cache_.clear();
}

void Model::count_active_experts(bool on) {
  if (moe_) moe_->count_active_experts(on);
}

void Model::attention_block(int64_t l, int64_t T, KvCache& cache, bool scatter) {
  ProfileSpan span(profiler_, "attention", l);
  Communicator& group = *tp_comm_;
  group.set_phase(l, "attention");
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_->layers[size_t(l)];
  const int64_t H = c.hidden_size, D = c.head_dim;
  const int64_t hq = topo_.heads_per_rank(), kvl = topo_.kv_heads_per_rank();
  const float eps = float(c.rms_norm_eps);
  backend_.rmsnorm(ws_.h, ws_.x, L.input_norm, T, H, eps);
  backend_.matmul(ws_.query, ws_.h, L.q, T, L.q_bias);  // [T, hq*D]
  backend_.matmul(ws_.key, ws_.h, L.k, T, L.k_bias);    // [T, kvl*D]
  backend_.matmul(ws_.value, ws_.h, L.v, T, L.v_bias);  // [T, kvl*D]
  backend_.rmsnorm(ws_.query, ws_.query, L.q_norm, T * hq, D, eps);
  backend_.rmsnorm(ws_.key, ws_.key, L.k_norm, T * kvl, D, eps);
  const float* inv_freq = weights_->rope_inv_freq;  // [D/2]
  const float rope_scale = weights_->rope_scale;
  backend_.rope(ws_.query, ws_.positions, T, hq, D, inv_freq, rope_scale);
  backend_.rope(ws_.key, ws_.positions, T, kvl, D, inv_freq, rope_scale);
  const KvCacheView kv = cache.view(l);
  backend_.kv_cache_write(kv, ws_.key, ws_.value, ws_.slots, T, kvl * D, D);
  AttentionBatch ab;
  ab.num_tokens = int(T);
  ab.positions = ws_.positions;
  ab.token_seq = ws_.token_seq;
  ab.block_tables = ws_.tables;
  ab.max_blocks_per_seq = batch_->max_blocks_per_seq;
  ab.block_size = int(cache.block_size());
  backend_.attention(ws_.attn, ws_.query, kv, ab, hq, kvl, D, float(1.0 / std::sqrt(double(D))));
  backend_.matmul(ws_.o, ws_.attn, L.o, T, L.o_bias);  // [T, H], partial over this rank's heads
  if (!scatter) {
    if (group.size() > 1) group.all_reduce_sum(ws_.o, size_t(T * H));
    backend_.add(ws_.x, ws_.o, T * H);
    return;
  }
  // Reduce-scatter over the group: its rank r gets the summed rows [r*per, (r+1)*per)
  // (padding rows are zero), and adds them to its slice of the residual.
  const int64_t G = group.size(), per = ceil_div(T, G);
  if (per * G > T) backend_.zero(ws_.o + T * H, size_t((per * G - T) * H) * sizeof(float));
  group.reduce_scatter_sum(ws_.o, ws_.xs, size_t(per * H));
  const int64_t r0 = group.rank() * per, mine = even_split(T, G, group.rank()).size;
  if (mine > 0) backend_.add(ws_.xs, ws_.x + r0 * H, mine * H);
}

void Model::mlp_block(int64_t l, int64_t T) {
  ProfileSpan span(profiler_, "dense_mlp", l);
  Communicator& group = *tp_comm_;
  group.set_phase(l, "dense_mlp");
  const ModelConfig& c = config_;
  const LayerWeights& L = weights_->layers[size_t(l)];
  const int64_t H = c.hidden_size, I = L.gate.rows;
  backend_.rmsnorm(ws_.h, ws_.x, L.post_norm, T, H, float(c.rms_norm_eps));
  backend_.matmul(ws_.gate, ws_.h, L.gate, T);  // [T, I]
  backend_.matmul(ws_.up, ws_.h, L.up, T);      // [T, I]
  backend_.silu_mul(ws_.act, ws_.gate, ws_.up, T, I);
  backend_.matmul(ws_.o, ws_.act, L.down, T);  // [T, H]
  if (group.size() > 1) group.all_reduce_sum(ws_.o, size_t(T * H));
  backend_.add(ws_.x, ws_.o, T * H);
}

void Model::moe_block(int64_t l, int64_t T) {
  const LayerWeights& L = weights_->layers[size_t(l)];
  Communicator& group = *tp_comm_;
  const int64_t G = group.size(), per = ceil_div(T, G);
  // This rank's tokens: all of its group's when the group is one rank (ws_.x; world 1 too),
  // else its slice of the group's reduce-scattered attention output (ws_.xs[0, mine)). The
  // exchange runs over the world with the most tokens any rank holds (the same on all).
  const bool sliced = G > 1 && T > 0;
  const int64_t mine = sliced ? even_split(T, G, group.rank()).size : T;
  const MoeWeights w{L.post_norm, L.router, L.gate_table, L.up_table, L.down_table};
  // The step's tokens over the world bound the expert pairs; most x W does (T at world 1), from
  // what a graph of this step is keyed by (the exact total depends on the other groups').
  moe_->forward(l, w, sliced ? ws_.xs : ws_.x, mine, most_per_rank_, most_per_rank_ * comm_.size(),
                ws_, profiler_);
  if (!sliced) return;
  // Every slice back to every rank of the group: x replicated for the next layer.
  group.set_phase(l, "moe all_gather");
  group.all_gather(ws_.xs, ws_.x, size_t(per * config_.hidden_size) * sizeof(float));
}

}  // namespace qwen3moe
