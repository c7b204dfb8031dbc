#include "parallel/expert_dispatch.h"

#include <chrono>
#include <cstring>

#include "kernels/check.h"

namespace qwen3moe {
namespace {

// Offsets of consecutive blocks of the given byte counts.
std::vector<size_t> prefix_offsets(const std::vector<size_t>& bytes) {
  std::vector<size_t> off(bytes.size(), 0);
  for (size_t i = 1; i < bytes.size(); ++i) off[i] = off[i - 1] + bytes[i - 1];
  return off;
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
  QWEN3MOE_CHECK(num_experts % world_ == 0, num_experts, " experts cannot be split over ep=",
                 world_);
  experts_per_rank_ = num_experts / world_;
  local_experts_ = experts_per_rank_;
  dest_tokens_.resize(static_cast<size_t>(world_));
  send_rows_.resize(static_cast<size_t>(world_));
  recv_rows_per_peer_.resize(static_cast<size_t>(world_));
}

void ExpertDispatch::exchange(const void* send, const std::vector<size_t>& send_bytes, void* recv,
                              const std::vector<size_t>& recv_bytes) {
  comm_.all_to_all_v(send, send_bytes.data(), prefix_offsets(send_bytes).data(), recv,
                     recv_bytes.data(), prefix_offsets(recv_bytes).data());
}

void ExpertDispatch::dispatch(const float* h, int64_t n, const int32_t* ids,
                              const float* weights, int64_t layer, A2aProfiler* profiler) {
  const int64_t H = hidden_, k = top_k_;
  const int64_t row = H + 2 * k;  // floats per sent row: hidden, k expert ids, k weights
  n_ = n;
  layer_ = layer;
  for (auto& d : dest_tokens_) d.clear();
  std::vector<char> seen(static_cast<size_t>(world_));
  for (int64_t t = 0; t < n; ++t) {
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = ids[t * k + j];
      QWEN3MOE_CHECK(e >= 0 && e < num_experts_, "router chose expert ", e, " outside [0, ",
                     num_experts_, ")");
      seen[size_t(e / experts_per_rank_)] = 1;
    }
    for (int p = 0; p < world_; ++p)
      if (seen[size_t(p)]) dest_tokens_[size_t(p)].push_back(int32_t(t));
  }
  size_t total = 0;
  for (int p = 0; p < world_; ++p) total += send_rows_[size_t(p)] = dest_tokens_[size_t(p)].size();
  send_buf_.resize(std::max<size_t>(1, total * size_t(row)));
  float* out = send_buf_.data();
  for (int p = 0; p < world_; ++p) {
    for (int32_t t : dest_tokens_[size_t(p)]) {
      std::memcpy(out, h + int64_t(t) * H, sizeof(float) * size_t(H));
      for (int64_t j = 0; j < k; ++j) {
        const int32_t e = ids[int64_t(t) * k + j];
        // Experts of other ranks are blanked: each rank sees only what it must compute.
        const int32_t mine = e / experts_per_rank_ == p ? e : -1;
        std::memcpy(out + H + j, &mine, sizeof(int32_t));
        out[H + k + j] = weights[int64_t(t) * k + j];
      }
      out += row;
    }
  }

  comm_.set_phase(layer, "dispatch");
  // Counts first: the wait for the slowest peer to reach this layer.
  const double t0 = profiler ? profiler->now_us() : 0;
  std::vector<size_t> eight(static_cast<size_t>(world_), sizeof(uint64_t));
  std::vector<uint64_t> send_counts(send_rows_.begin(), send_rows_.end()), recv_counts(static_cast<size_t>(world_));
  exchange(send_counts.data(), eight, recv_counts.data(), eight);
  const double t1 = profiler ? profiler->now_us() : 0;
  std::vector<size_t> send_bytes(static_cast<size_t>(world_)), recv_bytes(static_cast<size_t>(world_));
  recv_rows_ = 0;
  for (int p = 0; p < world_; ++p) {
    recv_rows_per_peer_[size_t(p)] = size_t(recv_counts[size_t(p)]);
    recv_rows_ += int64_t(recv_counts[size_t(p)]);
    send_bytes[size_t(p)] = send_rows_[size_t(p)] * size_t(row) * sizeof(float);
    recv_bytes[size_t(p)] = recv_rows_per_peer_[size_t(p)] * size_t(row) * sizeof(float);
  }
  recv_buf_.resize(std::max<size_t>(1, size_t(recv_rows_ * row)));
  exchange(send_buf_.data(), send_bytes, recv_buf_.data(), recv_bytes);
  if (profiler)
    profiler->record_exchange(layer, "dispatch", send_bytes, t0, t1 - t0, profiler->now_us() - t1);

  // Each local expert's (row, weight) pairs in row order; the rows stay where they arrived.
  const int64_t e0 = int64_t(rank_) * experts_per_rank_;
  auto for_each_pair = [&](auto&& fn) {
    for (int64_t r = 0; r < recv_rows_; ++r) {
      const float* in = recv_buf_.data() + r * row;
      for (int64_t j = 0; j < k; ++j) {
        int32_t e;
        std::memcpy(&e, in + H + j, sizeof(int32_t));
        if (e >= 0) fn(r, e, in[H + k + j]);
      }
    }
  };
  offsets_.assign(size_t(local_experts_ + 1), 0);
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
  std::vector<int64_t> fill(offsets_.begin(), offsets_.end() - 1);
  for_each_pair([&](int64_t r, int32_t e, float weight) {
    const int64_t at = fill[size_t(e - e0)]++;
    pair_rows_[size_t(at)] = int32_t(r);
    pair_weights_[size_t(at)] = weight;
  });
}

void ExpertDispatch::combine(const float* partial, float* y, A2aProfiler* profiler) {
  const int64_t H = hidden_;
  comm_.set_phase(layer_, "combine");
  // The rows go back the way they came: what arrived from peer p returns to p.
  const double t0 = profiler ? profiler->now_us() : 0;
  std::vector<size_t> eight(static_cast<size_t>(world_), sizeof(uint64_t));
  std::vector<uint64_t> send_counts(recv_rows_per_peer_.begin(), recv_rows_per_peer_.end());
  std::vector<uint64_t> recv_counts(static_cast<size_t>(world_));
  exchange(send_counts.data(), eight, recv_counts.data(), eight);
  const double t1 = profiler ? profiler->now_us() : 0;
  std::vector<size_t> send_bytes(static_cast<size_t>(world_)), recv_bytes(static_cast<size_t>(world_));
  for (int p = 0; p < world_; ++p) {
    QWEN3MOE_CHECK(recv_counts[size_t(p)] == send_rows_[size_t(p)], "combine: rank ", p,
                   " returns ", recv_counts[size_t(p)], " rows, ", send_rows_[size_t(p)],
                   " were dispatched to it");
    send_bytes[size_t(p)] = recv_rows_per_peer_[size_t(p)] * size_t(H) * sizeof(float);
    recv_bytes[size_t(p)] = send_rows_[size_t(p)] * size_t(H) * sizeof(float);
  }
  size_t back_rows = 0;
  for (size_t r : send_rows_) back_rows += r;
  back_buf_.resize(std::max<size_t>(1, back_rows * size_t(H)));
  exchange(partial, send_bytes, back_buf_.data(), recv_bytes);
  if (profiler)
    profiler->record_exchange(layer_, "combine", send_bytes, t0, t1 - t0, profiler->now_us() - t1);

  // Sum per token in rank order, i.e. in ascending expert blocks, as the one-rank sum does.
  std::memset(y, 0, sizeof(float) * size_t(n_ * H));
  const float* in = back_buf_.data();
  for (int p = 0; p < world_; ++p) {
    for (int32_t t : dest_tokens_[size_t(p)]) {
      float* dst = y + int64_t(t) * H;
      for (int64_t i = 0; i < H; ++i) dst[i] += in[i];
      in += H;
    }
  }
}

}  // namespace qwen3moe
