#include "parallel/moe/expert_dispatch.h"

#include <algorithm>
#include <chrono>

#include "kernels/common/check.h"
#include "parallel/profile/nvtx_range.h"

namespace qwen3moe {

void add_expert_outputs(Backend& backend, const DispatchHandle& h, const float* in,
                        const int32_t* pair_index, int64_t k, int64_t hidden) {
  if (h.tokens > 0)
    backend.moe_combine(h.residual, in, pair_index, h.weights, h.tokens, k, hidden, true);
  if (h.rows > h.peer_begin)
    backend.moe_combine(h.expert_out + h.peer_begin * hidden, in, pair_index + h.peer_begin * k,
                        h.weights + h.peer_begin * k, h.rows - h.peer_begin, k, hidden, false);
}

ExpertDispatch::ExpertDispatch(Backend& backend, Communicator& comm, const Topology& topo,
                               int64_t hidden, int64_t top_k)
    : backend_(backend),
      comm_(comm),
      hidden_(hidden),
      top_k_(top_k),
      num_experts_(topo.num_experts()),
      world_(comm.size()),
      rank_(comm.rank()) {
  QWEN3MOE_CHECK(topo.world() == world_ && topo.rank() == rank_, "ExpertDispatch: topology of ",
                 topo.world(), " ranks over a communicator of ", world_);
  QWEN3MOE_CHECK(num_experts_ > 0 && top_k_ > 0, "ExpertDispatch: ", num_experts_, " experts, top-",
                 top_k_);
  const size_t experts = static_cast<size_t>(num_experts_);
  std::vector<int32_t> owner(experts), local(experts);
  for (int64_t e = 0; e < num_experts_; ++e) {
    owner[size_t(e)] = topo.expert_owner(e);
    local[size_t(e)] = int32_t(topo.expert_index_on_owner(e));
  }
  owner_ = static_cast<int32_t*>(backend_.alloc(owner.size() * sizeof(int32_t)));
  local_ = static_cast<int32_t*>(backend_.alloc(local.size() * sizeof(int32_t)));
  backend_.upload(owner_, owner.data(), owner.size() * sizeof(int32_t));
  backend_.upload(local_, local.data(), local.size() * sizeof(int32_t));
  const size_t w = size_t(world_);
  stats_ = static_cast<int32_t*>(backend_.alloc(3 * w * sizeof(int32_t)));
  plan_dev_ = static_cast<int32_t*>(backend_.alloc(4 * w * sizeof(int32_t)));
  counts_dev_ = static_cast<uint32_t*>(backend_.alloc(4 * w * sizeof(uint32_t)));
  stats_host_.resize(3 * w);
  plan_host_.resize(4 * w);
  for (auto* v : {&send_row_, &send_rows_, &meta_row_, &block_row_, &recv_rows_, &back_row_,
                  &stage_row_, &back_stage_row_})
    v->resize(w);
  counts_send_.resize(2 * w);
  counts_recv_.resize(2 * w);
  for (auto* v : {&send_bytes_, &send_off_, &recv_bytes_, &recv_off_, &logical_bytes_})
    v->resize(w);
}

ExpertDispatch::~ExpertDispatch() {
  for (void* p :
       {static_cast<void*>(owner_), static_cast<void*>(local_), static_cast<void*>(rows_buf_),
        static_cast<void*>(partial_), static_cast<void*>(meta_ids_), static_cast<void*>(meta_w_),
        static_cast<void*>(send_meta_), static_cast<void*>(recv_meta_),
        static_cast<void*>(combine_rows_), static_cast<void*>(pack_src_),
        static_cast<void*>(stats_), static_cast<void*>(plan_dev_), static_cast<void*>(fixed_plan_),
        static_cast<void*>(counts_dev_), static_cast<void*>(out_stage_),
        static_cast<void*>(in_stage_)})
    if (p) backend_.free(p);
}

// Grows a backend buffer to at least `need` elements (half again over the old size), keeping
// its first `keep`.
template <typename T>
T* ExpertDispatch::grow(T*& ptr, int64_t& capacity, int64_t need, int64_t keep) {
  if (need <= capacity && ptr) return ptr;
  const int64_t cap = std::max<int64_t>({need, capacity + capacity / 2, 1});
  T* grown = static_cast<T*>(backend_.alloc(size_t(cap) * sizeof(T)));
  if (ptr) {
    ++reallocations_;
    if (keep > 0) backend_.copy(grown, ptr, size_t(keep) * sizeof(T));
    backend_.free(ptr);
  }
  ptr = grown;
  capacity = cap;
  return ptr;
}

void ExpertDispatch::ensure_rows(int64_t rows, int64_t keep) {
  grow(rows_buf_, rows_cap_, rows * hidden_, keep * hidden_);
}

void ExpertDispatch::ensure_meta(int64_t send_rows, int64_t recv_rows) {
  grow(meta_ids_, meta_ids_cap_, recv_rows * top_k_, 0);
  grow(meta_w_, meta_w_cap_, recv_rows * top_k_, 0);
  grow(send_meta_, send_meta_cap_, 2 * send_rows * top_k_, 0);
  grow(recv_meta_, recv_meta_cap_, 2 * recv_rows * top_k_, 0);
}

void ExpertDispatch::reserve(int64_t max_tokens) {
  const int64_t peers = world_ - 1, n = std::max<int64_t>(1, max_tokens);
  // Own rows, rows packed for each peer, and every peer's tokens; then the rows coming back.
  // The input rows a caller may have written already are kept.
  ensure_rows((1 + 2 * peers) * n, n_);
  if (world_ == 1) return;
  grow(partial_, partial_cap_, (1 + 3 * peers) * n * hidden_, 0);
  ensure_meta(peers * n, (1 + 2 * peers) * n);
  grow(combine_rows_, combine_cap_, n * world_, 0);
  grow(pack_src_, pack_cap_, peers * n, 0);
  // The bf16 staging too (the payload may be switched after reserve): at most every token to
  // every peer, either way.
  grow(out_stage_, out_stage_cap_, peers * n * hidden_, 0);
  grow(in_stage_, in_stage_cap_, peers * n * hidden_, 0);
}

void ExpertDispatch::set_payload_dtype(DType dtype) {
  QWEN3MOE_CHECK(dtype == DType::F32 || dtype == DType::BF16, "all-to-all payload dtype ",
                 dtype_name(dtype), " is not supported (f32 or bf16)");
  payload_ = dtype;
}

void ExpertDispatch::set_capacity(int64_t tokens) {
  // Rows and meta offsets travel as int32 (the plan): bound the layout before sizing it.
  // Rows and meta offsets travel as int32 (the plan), a peer's block as an int byte count:
  // bound the layout before sizing it.
  const int64_t limit = std::min<int64_t>((int64_t(1) << 30) / (2 * world_ * top_k_),
                                          (int64_t(1) << 31) / (hidden_ * 4));
  QWEN3MOE_CHECK(tokens >= 0 && tokens < limit, "a2a capacity of ", tokens,
                 " tokens per rank is outside [0, ", limit, ") at world ", world_, ", hidden ",
                 hidden_);
  capacity_ = 0;  // set last: a failed allocation below leaves the counted exchange in force
  if (world_ == 1 || tokens == 0) return;
  const int64_t C = tokens, W = world_, H = hidden_, k = top_k_, peers = W - 1;
  // Own rows [0, C), each peer's block of C after them; expert outputs over those, then the
  // C rows each peer returns.
  ensure_rows(C * W, n_);
  if (C * W > n_) backend_.zero(rows_buf_ + n_ * H, size_t((C * W - n_) * H) * sizeof(float));
  grow(partial_, partial_cap_, (C * W + peers * C) * H, 0);
  grow(meta_ids_, meta_ids_cap_, C * W * k, 0);
  grow(meta_w_, meta_w_cap_, C * W * k, 0);
  grow(send_meta_, send_meta_cap_, 2 * peers * C * k, 0);
  grow(recv_meta_, recv_meta_cap_, 2 * peers * C * k, 0);
  grow(combine_rows_, combine_cap_, C * W, 0);
  grow(out_stage_, out_stage_cap_, peers * C * H, 0);
  grow(in_stage_, in_stage_cap_, peers * C * H, 0);
  const size_t w = size_t(W);
  use_fixed_layout(C);
  std::vector<int32_t> plan(4 * w, 0);
  for (size_t q = 0; q < w; ++q) {
    plan[2 * w + q] = int32_t(meta_row_[q]);
    plan[3 * w + q] = int32_t(back_row_[q]);
  }
  if (!fixed_plan_) fixed_plan_ = static_cast<int32_t*>(backend_.alloc(plan.size() * 4));
  backend_.upload(fixed_plan_, plan.data(), plan.size() * sizeof(int32_t));
  capacity_ = tokens;
}

void ExpertDispatch::use_fixed_layout(int64_t C) {
  const int64_t W = world_;
  rows_ = C * W;
  returned_ = (W - 1) * C;
  for (int p = 0, slot = 0; p < W; ++p) {
    const size_t q = size_t(p);
    const bool self = p == rank_;
    send_row_[q] = 0;  // every peer gets the same input rows [0, C)
    send_rows_[q] = recv_rows_[q] = self ? 0 : C;
    // What the counts exchange would have said: C rows, all of them counted in the profile.
    counts_recv_[2 * q] = counts_recv_[2 * q + 1] = self ? 0 : uint32_t(C);
    meta_row_[q] = stage_row_[q] = back_stage_row_[q] = slot * C;  // meta blocks, bf16 staging
    block_row_[q] = C + slot * C;     // the peer's rows in rows_buf_ and partial_
    back_row_[q] = C * W + slot * C;  // what the peer returns, in partial_
    if (!self) ++slot;
  }
}

void ExpertDispatch::exchange_meta() {
  const int64_t k = top_k_;
  exchange(send_meta_, meta_row_, send_rows_, recv_meta_, stage_row_, recv_rows_,
           size_t(2 * k) * sizeof(int32_t));
  for (size_t p = 0; p < size_t(world_); ++p) {
    if (recv_rows_[p] == 0) continue;
    const int32_t* block = recv_meta_ + 2 * k * stage_row_[p];
    const size_t half = size_t(recv_rows_[p] * k) * sizeof(int32_t);
    backend_.copy(meta_ids_ + block_row_[p] * k, block, half);
    backend_.copy(meta_w_ + block_row_[p] * k, block + recv_rows_[p] * k, half);
  }
}

float* ExpertDispatch::input(int64_t n) {
  ensure_rows(std::max<int64_t>(n, 1), 0);
  n_ = n;
  return rows_buf_;
}

void ExpertDispatch::exchange_counts() {
  // Two uint32 per peer both ways (rows, routed rows), through backend memory: the send half of
  // counts_dev_, then the receive half.
  const size_t w = size_t(world_), half = 2 * w;
  backend_.upload(counts_dev_, counts_send_.data(), half * sizeof(uint32_t));
  for (size_t p = 0; p < w; ++p) {
    send_bytes_[p] = recv_bytes_[p] = 2 * sizeof(uint32_t);
    send_off_[p] = 2 * p * sizeof(uint32_t);
    recv_off_[p] = (half + 2 * p) * sizeof(uint32_t);
  }
  comm_.all_to_all_v(counts_dev_, send_bytes_.data(), send_off_.data(), counts_dev_,
                     recv_bytes_.data(), recv_off_.data());
  backend_.download(counts_recv_.data(), counts_dev_ + half, half * sizeof(uint32_t));
}

void ExpertDispatch::exchange(const void* send, const std::vector<int64_t>& send_row,
                              const std::vector<int64_t>& send_rows, void* recv,
                              const std::vector<int64_t>& recv_row,
                              const std::vector<int64_t>& recv_rows, size_t row_bytes) {
  for (int p = 0; p < world_; ++p) {
    const size_t q = size_t(p);
    const bool self = p == rank_;  // own rows never travel
    send_bytes_[q] = self ? 0 : size_t(send_rows[q]) * row_bytes;
    send_off_[q] = self ? 0 : size_t(send_row[q]) * row_bytes;
    recv_bytes_[q] = self ? 0 : size_t(recv_rows[q]) * row_bytes;
    recv_off_[q] = self ? 0 : size_t(recv_row[q]) * row_bytes;
  }
  comm_.all_to_all_v(send, send_bytes_.data(), send_off_.data(), recv, recv_bytes_.data(),
                     recv_off_.data());
}

MoeDispatchPack ExpertDispatch::pack_args(int64_t n, const int32_t* ids, const float* weights,
                                          const int32_t* plan) const {
  MoeDispatchPack a;
  a.ids = ids;
  a.weights = weights;
  a.owner = owner_;
  a.local = local_;
  a.plan = plan;
  a.pack_src = pack_src_;
  a.combine_rows = combine_rows_;
  a.send_meta = send_meta_;
  a.own_ids = meta_ids_;
  a.own_weights = meta_w_;
  a.tokens = n;
  a.k = top_k_;
  a.experts = num_experts_;
  a.world = world_;
  a.rank = rank_;
  return a;
}

void ExpertDispatch::exchange_bf16(const float* rows, int64_t n,
                                   const std::vector<int64_t>& send_row,
                                   const std::vector<int64_t>& send_rows, float* out,
                                   int64_t received, const std::vector<int64_t>& recv_row,
                                   const std::vector<int64_t>& recv_rows) {
  const int64_t H = hidden_;
  backend_.rows_to_bf16(out_stage_, rows, nullptr, n, H);
  exchange(out_stage_, send_row, send_rows, in_stage_, recv_row, recv_rows,
           size_t(H) * sizeof(uint16_t));
  backend_.rows_to_f32(out, in_stage_, received, H);
}

uint64_t ExpertDispatch::peer_bytes(const std::vector<int64_t>& rows, size_t row_bytes) const {
  uint64_t total = 0;
  for (size_t p = 0; p < rows.size(); ++p)
    if (int(p) != rank_) total += uint64_t(rows[p]) * row_bytes;
  return total;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

DispatchHandle ExpertDispatch::dispatch(int64_t n, int64_t max_rank_tokens, const int32_t* ids,
                                        const float* weights, float* residual, int64_t layer,
                                        A2aProfiler* profiler) {
  const auto started = std::chrono::steady_clock::now();
  NvtxRange nvtx("dispatch", layer);
  QWEN3MOE_CHECK(n == n_, "dispatch of ", n, " tokens, but input() was sized for ", n_);
  QWEN3MOE_CHECK(n <= max_rank_tokens, "dispatch of ", n, " tokens, more than the ",
                 max_rank_tokens, " the call says any rank has");
  const int64_t H = hidden_, k = top_k_;
  DispatchHandle h;
  h.tokens = n;
  h.residual = residual;
  h.layer = layer;
  if (world_ == 1) {
    // The identity: the experts read the input and the router's arrays, add into the residual.
    h.rows = n;
    h.row_data = rows_buf_;
    h.ids = ids;
    h.weights = weights;
    h.peer_begin = n;
    h.expert_out = residual;
    return h;
  }
  if (fixed(max_rank_tokens)) {
    h = dispatch_fixed(n, ids, weights, h, profiler);
    if (counters_)
      counters_->add_dispatch(layer, peer_bytes(send_rows_, dispatch_row_bytes()),
                              seconds_since(started));
    return h;
  }
  const size_t w = size_t(world_);

  // Layout: which ranks each token goes to, on the backend; the host reads 3 ints per rank.
  backend_.moe_dispatch_count(stats_, ids, owner_, n, k, num_experts_, world_);
  backend_.download(stats_host_.data(), stats_, stats_host_.size() * sizeof(int32_t));
  const int32_t *routed = stats_host_.data(), *first = routed + w, *last = routed + 2 * w;

  // The plan. A peer's rows are sent from where they are when its tokens fill at least half
  // of a contiguous range of the input (an idle row costs about what packing one does,
  // measured with a2a-bench under zipf routing); otherwise they are packed once, after the
  // input rows. Own rows stay in place.
  int64_t packed = 0, sent = 0;
  for (size_t p = 0; p < w; ++p) {
    meta_row_[p] = sent;
    if (int(p) == rank_) {
      send_row_[p] = 0;
      send_rows_[p] = n;
      continue;
    }
    const int64_t span = routed[p] > 0 ? int64_t(last[p]) - first[p] + 1 : 0;
    if (routed[p] > 0 && 2 * (span - routed[p]) <= span) {
      send_row_[p] = first[p];
      send_rows_[p] = span;
    } else {
      send_row_[p] = n + packed;
      send_rows_[p] = routed[p];
      packed += routed[p];
    }
    sent += send_rows_[p];
  }

  comm_.set_phase(layer, "dispatch");
  // Counts first: the wait for the slowest peer to reach this layer.
  const A2aMark t0 = profiler ? profiler->mark() : A2aMark{};
  for (size_t p = 0; p < w; ++p) {
    counts_send_[2 * p] = int(p) == rank_ ? 0 : uint32_t(send_rows_[p]);
    counts_send_[2 * p + 1] = int(p) == rank_ ? 0 : uint32_t(routed[p]);
  }
  exchange_counts();
  const A2aMark t1 = profiler ? profiler->mark() : A2aMark{};

  // What arrives lands after the input and packed rows, in rank order; in combine each peer's
  // rows come back after all of those, again in rank order.
  int64_t cursor = n + packed;
  for (size_t p = 0; p < w; ++p) {
    recv_rows_[p] = int(p) == rank_ ? 0 : int64_t(counts_recv_[2 * p]);
    block_row_[p] = cursor;
    cursor += recv_rows_[p];
  }
  rows_ = cursor;
  returned_ = 0;
  for (size_t p = 0; p < w; ++p) {
    back_row_[p] = rows_ + returned_;
    if (int(p) != rank_) returned_ += send_rows_[p];
  }
  ensure_rows(rows_, n);
  ensure_meta(sent, rows_);
  grow(partial_, partial_cap_, (rows_ + returned_) * H, 0);
  grow(combine_rows_, combine_cap_, n * world_, 0);
  grow(pack_src_, pack_cap_, packed, 0);

  for (size_t p = 0; p < w; ++p) {
    plan_host_[p] = int32_t(send_row_[p]);
    plan_host_[w + p] = int32_t(send_rows_[p]);
    plan_host_[2 * w + p] = int32_t(meta_row_[p]);
    plan_host_[3 * w + p] = int32_t(back_row_[p]);
  }
  backend_.upload(plan_dev_, plan_host_.data(), plan_host_.size() * sizeof(int32_t));
  MoeDispatchPack a = pack_args(n, ids, weights, plan_dev_);
  a.packed = packed;
  backend_.moe_dispatch_pack(a);
  const int64_t received = rows_ - (n + packed);
  for (size_t p = 0; p < w; ++p) {
    stage_row_[p] = block_row_[p] - (n + packed);
    back_stage_row_[p] = back_row_[p] - rows_;
  }
  if (payload_ == DType::F32) {
    if (packed > 0) backend_.gather_rows(rows_buf_ + n * H, rows_buf_, pack_src_, packed, H);
    exchange(rows_buf_, send_row_, send_rows_, rows_buf_, block_row_, recv_rows_,
             size_t(H) * sizeof(float));
  } else {
    // Each peer's rows rounded once into the staging buffer, in its meta order: a range from
    // the input rows as they are, packed rows straight from their tokens.
    grow(out_stage_, out_stage_cap_, std::max(sent, received) * H, 0);
    grow(in_stage_, in_stage_cap_, std::max(sent, received) * H, 0);
    for (size_t p = 0; p < w; ++p) {
      if (int(p) == rank_ || send_rows_[p] == 0) continue;
      uint16_t* dst = out_stage_ + meta_row_[p] * H;
      if (send_row_[p] < n)
        backend_.rows_to_bf16(dst, rows_buf_ + send_row_[p] * H, nullptr, send_rows_[p], H);
      else
        backend_.rows_to_bf16(dst, rows_buf_, pack_src_ + (send_row_[p] - n), send_rows_[p], H);
    }
    exchange(out_stage_, meta_row_, send_rows_, in_stage_, stage_row_, recv_rows_,
             size_t(H) * sizeof(uint16_t));
    backend_.rows_to_f32(rows_buf_ + (n + packed) * H, in_stage_, received, H);
  }
  exchange_meta();
  if (profiler) {
    const size_t row_bytes = dispatch_row_bytes();
    for (size_t p = 0; p < w; ++p) logical_bytes_[p] = size_t(routed[p]) * row_bytes;
    profiler->record_exchange(layer, "dispatch", logical_bytes_, t0, t1, profiler->mark());
  }
  h.rows = rows_;
  h.row_data = rows_buf_;
  h.ids = meta_ids_;
  h.weights = meta_w_;
  h.peer_begin = n + packed;
  h.expert_out = partial_;
  if (counters_)
    counters_->add_dispatch(layer, peer_bytes(send_rows_, dispatch_row_bytes()),
                            seconds_since(started));
  return h;
}

void ExpertDispatch::combine(const DispatchHandle& h, A2aProfiler* profiler) {
  if (world_ == 1) return;  // the experts added into the residual themselves
  const auto started = std::chrono::steady_clock::now();
  NvtxRange nvtx("combine", h.layer);
  QWEN3MOE_CHECK(h.expert_out == partial_ && h.rows == rows_,
                 "combine: the handle is not this dispatcher's last dispatch");
  const int64_t H = hidden_;
  comm_.set_phase(h.layer, "combine");
  const A2aMark t0 = profiler ? profiler->mark() : A2aMark{};
  // The rows go back the way they came: what arrived from peer p returns to p, sent from where
  // it is in the partial buffer, landing after the expert rows.
  if (payload_ == DType::F32) {
    exchange(partial_, block_row_, recv_rows_, partial_, back_row_, send_rows_,
             size_t(H) * sizeof(float));
  } else {
    // The received rows are contiguous in partial (rank order), as in the staging buffer.
    const int64_t first = h.peer_begin;
    exchange_bf16(partial_ + first * H, rows_ - first, stage_row_, recv_rows_, partial_ + rows_ * H,
                  returned_, back_stage_row_, send_rows_);
  }
  if (profiler) {
    const size_t w = size_t(world_);
    for (size_t p = 0; p < w; ++p) {
      const uint64_t rows = int(p) == rank_ ? uint64_t(stats_host_[p]) : counts_recv_[2 * p + 1];
      logical_bytes_[p] = size_t(rows) * size_t(H) * dtype_size(payload_);
    }
    profiler->record_exchange(h.layer, "combine", logical_bytes_, t0, t0, profiler->mark());
  }
  // Each token's returned rows into the residual (its own experts' sum is there already).
  backend_.moe_combine(h.residual, partial_, combine_rows_, nullptr, h.tokens, world_, H);
  if (counters_)
    counters_->add_combine(h.layer, peer_bytes(recv_rows_, combine_row_bytes(H, payload_)),
                           seconds_since(started));
}

DispatchHandle ExpertDispatch::dispatch_fixed(int64_t n, const int32_t* ids, const float* weights,
                                              DispatchHandle h, A2aProfiler* profiler) {
  const int64_t C = capacity_, W = world_, H = hidden_, k = top_k_;
  const size_t w = size_t(W);
  ++fixed_dispatches_;
  // Only for the profile: which of this rank's tokens stay here (the bytes matrix diagonal).
  if (profiler) {
    backend_.moe_dispatch_count(stats_, ids, owner_, n, k, num_experts_, world_);
    backend_.download(stats_host_.data(), stats_, stats_host_.size() * sizeof(int32_t));
  }
  comm_.set_phase(h.layer, "dispatch");
  const A2aMark t0 = profiler ? profiler->mark() : A2aMark{};
  // The fixed layout in the per-call plan the exchanges and combine read.
  use_fixed_layout(C);
  MoeDispatchPack a = pack_args(n, ids, weights, fixed_plan_);
  a.packed = C - n;  // the own block's idle rows: no local expert reads them
  a.capacity = C;
  backend_.moe_dispatch_pack(a);
  // Every peer gets the same C input rows; they land after the own block, in rank order.
  if (payload_ == DType::F32) {
    exchange(rows_buf_, send_row_, send_rows_, rows_buf_, block_row_, recv_rows_,
             size_t(H) * sizeof(float));
  } else {
    exchange_bf16(rows_buf_, C, send_row_, send_rows_, rows_buf_ + C * H, (W - 1) * C, stage_row_,
                  recv_rows_);
  }
  exchange_meta();
  if (profiler) {
    const size_t row_bytes = dispatch_row_bytes();
    for (size_t p = 0; p < w; ++p)
      logical_bytes_[p] = size_t(int(p) == rank_ ? stats_host_[p] : C) * row_bytes;
    profiler->record_exchange(h.layer, "dispatch", logical_bytes_, t0, t0, profiler->mark());
  }
  h.rows = rows_;
  h.row_data = rows_buf_;
  h.ids = meta_ids_;
  h.weights = meta_w_;
  h.peer_begin = C;
  h.expert_out = partial_;
  return h;
}

}  // namespace qwen3moe
