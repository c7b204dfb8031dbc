#include "parallel/moe/expert_dispatch.h"

#include <algorithm>
#include <cstring>

#include "kernels/common/check.h"
#include "parallel/profile/nvtx_range.h"

namespace qwen3moe {
namespace {

// y[H] = the sum of src[0..count) in order; one pass over y for the common one or two sources.
void sum_rows(float* y, const float* const* src, int count, int64_t H) {
  if (count == 0) {
    std::memset(y, 0, sizeof(float) * size_t(H));
    return;
  }
  if (count == 1) {
    std::memcpy(y, src[0], sizeof(float) * size_t(H));
    return;
  }
  const float *a = src[0], *b = src[1];
  for (int64_t i = 0; i < H; ++i) y[i] = a[i] + b[i];
  for (int c = 2; c < count; ++c) {
    const float* s = src[c];
    for (int64_t i = 0; i < H; ++i) y[i] += s[i];
  }
}

// y[H] += each of src[0..count) in order.
void add_rows(float* y, const float* const* src, int count, int64_t H) {
  for (int c = 0; c < count; ++c) {
    const float* s = src[c];
    for (int64_t i = 0; i < H; ++i) y[i] += s[i];
  }
}

}  // namespace

ExpertDispatch::ExpertDispatch(Communicator& comm, int64_t hidden, int64_t num_experts,
                               int64_t top_k)
    : comm_(comm),
      hidden_(hidden),
      num_experts_(num_experts),
      top_k_(top_k),
      world_(comm.size()),
      rank_(comm.rank()) {
  QWEN3MOE_CHECK(num_experts % world_ == 0, num_experts,
                 " experts cannot be split over ep=", world_);
  experts_per_rank_ = num_experts / world_;
  local_experts_ = experts_per_rank_;
  const size_t w = static_cast<size_t>(world_);
  dest_tokens_.resize(w);
  block_row_.resize(w);
  back_row_.resize(w);
  send_rows_.resize(w);
  recv_rows_.resize(w);
  count_scratch_.resize(w);
  send_bytes_.resize(w);
  send_off_.resize(w);
  recv_bytes_.resize(w);
  recv_off_.resize(w);
  logical_bytes_.resize(w);
  sources_.resize(w);
  routed_in_.resize(w);
  send_row_.resize(w);
  meta_at_.resize(w);
  meta_recv_at_.resize(w);
  offsets_.resize(size_t(local_experts_ + 1));
  fill_.resize(size_t(local_experts_));
}

void ExpertDispatch::reserve(int64_t max_tokens) {
  const int64_t H = hidden_, peers = world_ - 1;
  // Own rows, rows packed for each peer, and every peer's tokens.
  ensure_rows((1 + 2 * peers) * max_tokens, 0);
  meta_send_.reserve(size_t(std::max<int64_t>(1, peers * max_tokens * 2 * top_k_)));
  meta_recv_.reserve(size_t(std::max<int64_t>(1, peers * max_tokens * 2 * top_k_)));
  out_.reserve(size_t(std::max<int64_t>(1, world_ * max_tokens * H)));
  token_slot_.reserve(size_t(max_tokens * world_));
  for (auto& d : dest_tokens_) d.reserve(size_t(max_tokens));
  pair_rows_.reserve(size_t(world_ * max_tokens * top_k_));
  pair_weights_.reserve(size_t(world_ * max_tokens * top_k_));
}

void ExpertDispatch::ensure_rows(int64_t rows, int64_t keep) {
  if (rows <= capacity_) return;
  const int64_t cap = std::max(rows, capacity_ + capacity_ / 2);
  std::unique_ptr<float[]> grown(new float[size_t(cap * hidden_)]);
  if (keep > 0) std::memcpy(grown.get(), buf_.get(), sizeof(float) * size_t(keep * hidden_));
  buf_ = std::move(grown);
  capacity_ = cap;
}

float* ExpertDispatch::input(int64_t n) {
  ensure_rows(std::max<int64_t>(n, 1), 0);
  n_ = n;
  return buf_.get();
}

void ExpertDispatch::exchange_counts(const uint64_t* send, uint64_t* recv) {
  // Eight bytes per peer both ways; the offsets are the peers' slots.
  for (int p = 0; p < world_; ++p) {
    send_bytes_[size_t(p)] = recv_bytes_[size_t(p)] = sizeof(uint64_t);
    send_off_[size_t(p)] = recv_off_[size_t(p)] = size_t(p) * sizeof(uint64_t);
  }
  comm_.all_to_all_v(send, send_bytes_.data(), send_off_.data(), recv, recv_bytes_.data(),
                     recv_off_.data());
}

void ExpertDispatch::dispatch(int64_t n, const int32_t* ids, const float* weights, int64_t layer,
                              A2aProfiler* profiler) {
  NvtxRange nvtx("dispatch", layer);
  QWEN3MOE_CHECK(n == n_, "dispatch of ", n, " tokens, but input() was sized for ", n_);
  const int64_t H = hidden_, k = top_k_, row = H + 2 * k;
  const size_t w = static_cast<size_t>(world_);
  layer_ = layer;

  // Destinations: each token once per rank owning one of its experts, in token order.
  for (auto& d : dest_tokens_) d.clear();
  token_slot_.assign(size_t(n) * w, -1);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = ids[t * k + j];
      QWEN3MOE_CHECK(e >= 0 && e < num_experts_, "router chose expert ", e, " outside [0, ",
                     num_experts_, ")");
      const size_t p = size_t(e / experts_per_rank_);
      int32_t& slot = token_slot_[size_t(t) * w + p];
      if (slot < 0) {
        slot = int32_t(dest_tokens_[p].size());
        dest_tokens_[p].push_back(int32_t(t));
      }
    }
  }

  // A peer's rows are sent from where they are when its tokens fill at least half of a
  // contiguous range of the input (at small world sizes, nearly always all of it): the whole
  // range goes, the tokens in it that are not routed there travel as rows without experts.
  // Otherwise they are packed once, after the input rows. Own rows stay in place. Each row's k
  // expert ids (other ranks' blanked to -1, so each rank sees only what it must compute) and k
  // weights go in a second, small exchange.
  int64_t packed = 0;
  size_t meta_floats = 0;
  for (int p = 0; p < world_; ++p) {
    const auto& tokens = dest_tokens_[size_t(p)];
    logical_bytes_[size_t(p)] = tokens.size() * size_t(row) * sizeof(float);
    send_rows_[size_t(p)] = tokens.size();
    send_row_[size_t(p)] = 0;
    if (p == rank_ || tokens.empty()) continue;
    const int64_t span = int64_t(tokens.back() - tokens.front()) + 1;
    const int64_t idle = span - int64_t(tokens.size());
    // An idle row costs about what packing one does (measured with a2a-bench, zipf routing),
    // and a range also comes back in place in combine: ranges at most half idle go as they are.
    if (2 * idle <= span) {
      send_row_[size_t(p)] = tokens.front();
      send_rows_[size_t(p)] = uint64_t(span);
      for (int32_t t : tokens) token_slot_[size_t(t) * w + size_t(p)] = t - tokens.front();
    } else {
      send_row_[size_t(p)] = n + packed;
      packed += int64_t(tokens.size());
    }
    meta_floats += size_t(send_rows_[size_t(p)]) * size_t(2 * k);
  }
  ensure_rows(n + packed, n);
  meta_send_.resize(std::max<size_t>(1, meta_floats));
  float* buf = buf_.get();
  float* meta = meta_send_.data();
  auto put_meta = [&](int64_t t, int p) {
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = ids[t * k + j];
      const int32_t mine = e / experts_per_rank_ == p ? e : -1;
      std::memcpy(meta + j, &mine, sizeof(int32_t));
      meta[k + j] = weights[t * k + j];
    }
    meta += 2 * k;
  };
  for (int p = 0; p < world_; ++p) {
    const auto& tokens = dest_tokens_[size_t(p)];
    meta_at_[size_t(p)] = size_t(meta - meta_send_.data());
    if (p == rank_ || tokens.empty()) continue;
    const int64_t first = send_row_[size_t(p)];
    if (first < n) {
      for (int64_t t = first; t < first + int64_t(send_rows_[size_t(p)]); ++t) put_meta(t, p);
      continue;
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::memcpy(buf + (first + int64_t(i)) * H, buf + int64_t(tokens[i]) * H,
                  sizeof(float) * size_t(H));
      put_meta(tokens[i], p);
    }
  }

  comm_.set_phase(layer, "dispatch");
  // Counts first: the wait for the slowest peer to reach this layer.
  const double t0 = profiler ? profiler->now_us() : 0;
  exchange_counts(send_rows_.data(), recv_rows_.data());
  const double t1 = profiler ? profiler->now_us() : 0;

  // Each peer's rows land after the input and packed rows, in rank order.
  int64_t cursor = n + packed;
  size_t meta_in = 0;
  for (int p = 0; p < world_; ++p) {
    const size_t q = size_t(p);
    const int64_t cnt = p == rank_ ? 0 : int64_t(recv_rows_[q]);
    const size_t out = p == rank_ ? 0 : size_t(send_rows_[q]);
    block_row_[q] = cursor;
    meta_recv_at_[q] = meta_in;
    send_bytes_[q] = out * size_t(H) * sizeof(float);
    send_off_[q] = size_t(p == rank_ ? 0 : send_row_[q] * H) * sizeof(float);
    recv_bytes_[q] = size_t(cnt * H) * sizeof(float);
    recv_off_[q] = size_t(cursor * H) * sizeof(float);
    cursor += cnt;
    meta_in += size_t(cnt * 2 * k);
  }
  rows_ = cursor;
  ensure_rows(rows_, n + packed);
  meta_recv_.resize(std::max<size_t>(1, meta_in));
  comm_.all_to_all_v(buf_.get(), send_bytes_.data(), send_off_.data(), buf_.get(),
                     recv_bytes_.data(), recv_off_.data());
  for (int p = 0; p < world_; ++p) {
    const size_t q = size_t(p);
    const size_t out = p == rank_ ? 0 : size_t(send_rows_[q]);
    const size_t in = p == rank_ ? 0 : size_t(recv_rows_[q]);
    send_bytes_[q] = out * size_t(2 * k) * sizeof(float);
    send_off_[q] = meta_at_[q] * sizeof(float);
    recv_bytes_[q] = in * size_t(2 * k) * sizeof(float);
    recv_off_[q] = meta_recv_at_[q] * sizeof(float);
  }
  comm_.all_to_all_v(meta_send_.data(), send_bytes_.data(), send_off_.data(), meta_recv_.data(),
                     recv_bytes_.data(), recv_off_.data());
  if (profiler)
    profiler->record_exchange(layer, "dispatch", logical_bytes_, t0, t1 - t0,
                              profiler->now_us() - t1);

  // Rows that carry at least one local expert: what combine returns as routed traffic.
  for (int p = 0; p < world_; ++p) {
    const size_t q = size_t(p);
    routed_in_[q] = 0;
    if (p == rank_) continue;
    const float* got = meta_recv_.data() + meta_recv_at_[q];
    for (uint64_t i = 0; i < recv_rows_[q]; ++i) {
      bool any = false;
      for (int64_t j = 0; j < k; ++j) {
        int32_t e;
        std::memcpy(&e, got + int64_t(i) * 2 * k + j, sizeof(int32_t));
        any |= e >= 0;
      }
      routed_in_[q] += any;
    }
  }

  // Each local expert's (row, weight) pairs: own tokens from the router's arrays, the peers'
  // from the ids and weights that came with their rows.
  const int64_t e0 = int64_t(rank_) * experts_per_rank_;
  auto for_each_pair = [&](auto&& fn) {
    for (int p = 0; p < world_; ++p) {
      if (p == rank_) {
        for (int32_t t : dest_tokens_[size_t(p)])
          for (int64_t j = 0; j < k; ++j) {
            const int32_t e = ids[int64_t(t) * k + j];
            if (e / experts_per_rank_ == rank_) fn(int64_t(t), e, weights[int64_t(t) * k + j]);
          }
        continue;
      }
      const int64_t cnt = int64_t(recv_rows_[size_t(p)]), first = block_row_[size_t(p)];
      const float* got = meta_recv_.data() + meta_recv_at_[size_t(p)];
      for (int64_t i = 0; i < cnt; ++i)
        for (int64_t j = 0; j < k; ++j) {
          int32_t e;
          std::memcpy(&e, got + i * 2 * k + j, sizeof(int32_t));
          if (e >= 0) fn(first + i, e, got[i * 2 * k + k + j]);
        }
    }
  };
  std::fill(offsets_.begin(), offsets_.end(), 0);
  for_each_pair([&](int64_t, int32_t e, float) {
    QWEN3MOE_CHECK(e >= e0 && e < e0 + local_experts_, "rank ", rank_, " received expert ", e,
                   " which it does not own");
    ++offsets_[size_t(e - e0 + 1)];
  });
  for (int64_t e = 0; e < local_experts_; ++e) {
    if (profiler) profiler->record_expert_tokens(layer, e0 + e, offsets_[size_t(e + 1)]);
    offsets_[size_t(e + 1)] += offsets_[size_t(e)];
  }
  const int64_t pairs = offsets_[size_t(local_experts_)];
  pair_rows_.resize(size_t(pairs));
  pair_weights_.resize(size_t(pairs));
  std::copy(offsets_.begin(), offsets_.end() - 1, fill_.begin());
  for_each_pair([&](int64_t r, int32_t e, float weight) {
    const int64_t a = fill_[size_t(e - e0)]++;
    pair_rows_[size_t(a)] = int32_t(r);
    pair_weights_[size_t(a)] = weight;
  });
}

const float* ExpertDispatch::combine(const float* partial, A2aProfiler* profiler) {
  NvtxRange nvtx("combine", layer_);
  const int64_t H = hidden_, n = n_;
  const size_t w = static_cast<size_t>(world_);
  comm_.set_phase(layer_, "combine");
  // The rows go back the way they came: what arrived from peer p returns to p. The peer with
  // the longest run of tokens sent in place returns its rows straight into their tokens' rows
  // of the output (a whole pass saved at small world sizes); the others land after them.
  const double t0 = profiler ? profiler->now_us() : 0;
  exchange_counts(recv_rows_.data(), count_scratch_.data());
  const double t1 = profiler ? profiler->now_us() : 0;
  int direct = -1;
  for (int p = 0; p < world_; ++p)
    if (p != rank_ && send_row_[size_t(p)] < n && send_rows_[size_t(p)] > 0 &&
        (direct < 0 || send_rows_[size_t(p)] > send_rows_[size_t(direct)]))
      direct = p;
  int64_t back = n;  // the other peers' rows follow the n output rows
  for (int p = 0; p < world_; ++p) {
    const size_t q = size_t(p);
    QWEN3MOE_CHECK(count_scratch_[q] == send_rows_[q], "combine: rank ", p, " returns ",
                   count_scratch_[q], " rows, ", send_rows_[q], " were dispatched to it");
    const uint64_t routed = p == rank_ ? recv_rows_[q] : routed_in_[q];
    logical_bytes_[q] = size_t(routed) * size_t(H) * sizeof(float);
    if (p == rank_) {
      send_bytes_[q] = recv_bytes_[q] = send_off_[q] = recv_off_[q] = 0;
      continue;
    }
    // A peer's rows are contiguous in partial, as they arrived: sent from where they are.
    send_bytes_[q] = size_t(recv_rows_[q]) * size_t(H) * sizeof(float);
    send_off_[q] = size_t(block_row_[q] * H) * sizeof(float);
    back_row_[q] = p == direct ? send_row_[q] : back;
    recv_bytes_[q] = size_t(send_rows_[q]) * size_t(H) * sizeof(float);
    recv_off_[q] = size_t(back_row_[q] * H) * sizeof(float);
    if (p != direct) back += int64_t(send_rows_[q]);
  }
  out_.resize(size_t(std::max<int64_t>(1, back * H)));
  comm_.all_to_all_v(partial, send_bytes_.data(), send_off_.data(), out_.data(), recv_bytes_.data(),
                     recv_off_.data());
  if (profiler)
    profiler->record_exchange(layer_, "combine", logical_bytes_, t0, t1 - t0,
                              profiler->now_us() - t1);

  // Each token's rows summed: the direct peer's, already in place, then the others in rank
  // order; the own rank's row read in place from partial. Tokens the direct peer did not
  // serve hold an idle row there: overwritten.
  float* y = out_.data();
  for (int64_t t = 0; t < n; ++t) {
    const bool seeded = direct >= 0 && token_slot_[size_t(t) * w + size_t(direct)] >= 0;
    int count = 0;
    for (int p = 0; p < world_; ++p) {
      const int32_t slot = token_slot_[size_t(t) * w + size_t(p)];
      if (slot < 0 || (seeded && p == direct)) continue;
      sources_[size_t(count++)] =
          p == rank_ ? partial + t * H : y + (back_row_[size_t(p)] + slot) * H;
    }
    if (seeded)
      add_rows(y + t * H, sources_.data(), count, H);
    else
      sum_rows(y + t * H, sources_.data(), count, H);
  }
  return y;
}

}  // namespace qwen3moe
