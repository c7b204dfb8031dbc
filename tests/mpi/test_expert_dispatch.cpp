// ExpertDispatch under mpirun -np 2 and -np 4, on routings chosen to take each of its send
// paths: every token to every rank (rows sent from the input as they are), a range with a few
// tokens not routed to a peer (idle rows), scattered tokens (packed rows), a rank with no
// tokens, and everything to one rank. Payload values name (source rank, token, column), so a
// row delivered to the wrong expert or returned to the wrong token fails; each rank recomputes
// every rank's routing to know exactly which pairs its experts must see.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <set>
#include <tuple>
#include <vector>

#include "kernels/backend.h"
#include "kernels/common/check.h"
#include "mpi_world.h"
#include "parallel/moe/expert_dispatch.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe {
namespace {

constexpr int64_t kHidden = 16, kTopK = 3;

using testing::world;

float payload(int rank, int64_t token, int64_t col) {
  return float(rank * 100000 + token * 100 + col);
}

// The router of one test: tokens per rank, and the k distinct experts and weights of each.
struct Routing {
  std::function<int64_t(int rank)> tokens;
  std::function<std::vector<int32_t>(int rank, int64_t token)> experts;
};

float weight_of(int rank, int64_t token, int64_t j) {
  return 0.25f + 0.125f * float((rank + token + j) % 5);
}

// capacity > 0: the fixed-capacity exchange when every rank's tokens fit, else the counted one.
void run_case(const Routing& routing, int64_t experts, int64_t capacity = 0) {
  Communicator& comm = world();
  const int W = comm.size(), R = comm.rank();
  const int64_t per_rank = experts / W, e0 = R * per_rank;
  // The CPU backend: its memory is host memory, so the test reads the handle's arrays directly
  // and the exchange runs over the process's MPI communicator, the path a GPU runs over NCCL.
  const std::unique_ptr<Backend> backend = make_cpu_backend(1);
  const Topology topo = Topology::experts_only(R, W, experts);
  ExpertDispatch d(*backend, comm, topo, kHidden, kTopK);
  A2aProfiler profiler(R, W, experts, {true});
  int64_t most = 0;
  for (int r = 0; r < W; ++r) most = std::max(most, routing.tokens(r));
  d.set_capacity(capacity);
  const bool fixed = capacity > 0 && most <= capacity && W > 1;
  ASSERT_EQ(d.fixed(most), fixed);

  // Twice: the second round reuses the buffers the first one grew.
  for (int round = 0; round < 2; ++round) {
    const int64_t n = routing.tokens(R);
    float* in = d.input(n);
    std::vector<int32_t> ids(static_cast<size_t>(n * kTopK));
    std::vector<float> weights(ids.size());
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t c = 0; c < kHidden; ++c) in[t * kHidden + c] = payload(R, t, c);
      const std::vector<int32_t> e = routing.experts(R, t);
      for (int64_t j = 0; j < kTopK; ++j) {
        ids[size_t(t * kTopK + j)] = e[size_t(j)];
        weights[size_t(t * kTopK + j)] = weight_of(R, t, j);
      }
    }
    // The residual starts at -1 everywhere: combine must add exactly each token's result.
    std::vector<float> residual(static_cast<size_t>(std::max<int64_t>(1, n * kHidden)), -1.0f);
    const int64_t reallocations = d.reallocations();
    const DispatchHandle h =
        d.dispatch(n, most, ids.data(), weights.data(), residual.data(), 0, &profiler);
    // The fixed-capacity exchange sized everything in set_capacity.
    if (fixed) {
      EXPECT_EQ(d.reallocations(), reallocations);
      EXPECT_EQ(h.rows, capacity * W);
    }

    // What each local expert must see: (source rank, token, weight) for every pair routed to it.
    using Pair = std::tuple<int, int64_t, float>;
    std::vector<std::multiset<Pair>> expect(static_cast<size_t>(per_rank));
    for (int src = 0; src < W; ++src)
      for (int64_t t = 0; t < routing.tokens(src); ++t) {
        const std::vector<int32_t> e = routing.experts(src, t);
        for (int64_t j = 0; j < kTopK; ++j)
          if (e[size_t(j)] >= e0 && e[size_t(j)] < e0 + per_rank)
            expect[size_t(e[size_t(j)] - e0)].insert({src, t, weight_of(src, t, j)});
      }
    std::vector<std::multiset<Pair>> got(static_cast<size_t>(per_rank));
    for (int64_t r = 0; r < h.rows; ++r)
      for (int64_t j = 0; j < kTopK; ++j) {
        const int32_t e = h.ids[r * kTopK + j];
        if (e < 0) continue;
        ASSERT_LT(e, per_rank) << "row " << r << " names local expert " << e;
        // Decode the row's source from its payload, and check all its columns agree.
        const float v0 = h.row_data[r * kHidden];
        const int src = int(v0) / 100000;
        const int64_t t = (int64_t(v0) % 100000) / 100;
        for (int64_t c = 0; c < kHidden; ++c)
          ASSERT_EQ(h.row_data[r * kHidden + c], payload(src, t, c)) << "row " << r << " col " << c;
        got[size_t(e)].insert({src, t, h.weights[r * kTopK + j]});
      }
    for (int64_t e = 0; e < per_rank; ++e)
      EXPECT_EQ(got[size_t(e)], expect[size_t(e)]) << "rank " << R << " expert " << e0 + e;

    // Identity experts: each row's output is its local experts' weights times the row; the own
    // rows add into the residual, the peers' rows are written where combine sends them from
    // (everything else there is NaN: combine must never read it). Combine then adds the rest,
    // so each token ends at the sum of all its weights times its row.
    std::fill(h.expert_out + h.peer_begin * kHidden, h.expert_out + h.rows * kHidden,
              std::nanf(""));
    for (int64_t r = 0; r < h.rows; ++r) {
      const bool own = r < n, peer = r >= h.peer_begin;
      ASSERT_TRUE(own || peer || h.ids[r * kTopK] < 0) << "packed row " << r << " has experts";
      float* out = own ? residual.data() + r * kHidden : h.expert_out + r * kHidden;
      bool any = false;
      for (int64_t j = 0; j < kTopK; ++j) any |= h.ids[r * kTopK + j] >= 0;
      if (any && peer) std::fill(out, out + kHidden, 0.0f);
      for (int64_t j = 0; j < kTopK; ++j)
        if (h.ids[r * kTopK + j] >= 0)
          for (int64_t c = 0; c < kHidden; ++c)
            out[c] += h.weights[r * kTopK + j] * h.row_data[r * kHidden + c];
    }
    d.combine(h, &profiler);
    for (int64_t t = 0; t < n; ++t) {
      float wsum = 0;
      for (int64_t j = 0; j < kTopK; ++j) wsum += weight_of(R, t, j);
      for (int64_t c = 0; c < kHidden; ++c)
        ASSERT_NEAR(residual[size_t(t * kHidden + c)], wsum * payload(R, t, c) - 1.0f,
                    1e-5f * std::abs(wsum * payload(R, t, c)))
            << "rank " << R << " token " << t << " col " << c;
    }

    // The profile counts routed rows both ways: (token, destination) pairs, idle rows not.
    const auto& ex = profiler.exchanges();
    ASSERT_GE(ex.size(), 2u);
    const A2aExchange& disp = ex[ex.size() - 2];
    const A2aExchange& comb = ex[ex.size() - 1];
    std::vector<uint64_t> to(static_cast<size_t>(W), 0), from(static_cast<size_t>(W), 0);
    for (int64_t t = 0; t < n; ++t) {
      std::set<int> dest;
      for (int32_t e : routing.experts(R, t)) dest.insert(topo.expert_owner(e));
      for (int p : dest) ++to[size_t(p)];
    }
    for (int src = 0; src < W; ++src)
      for (int64_t t = 0; t < routing.tokens(src); ++t) {
        bool mine = false;
        for (int32_t e : routing.experts(src, t)) mine |= topo.expert_owner(e) == R;
        from[size_t(src)] += mine;
      }
    // Under a fixed capacity what travels is C rows to and from each peer.
    for (int p = 0; p < W; ++p) {
      const bool fixed_peer = fixed && p != R;
      const uint64_t rows_to = fixed_peer ? uint64_t(capacity) : to[size_t(p)];
      const uint64_t rows_back = fixed_peer ? uint64_t(capacity) : from[size_t(p)];
      EXPECT_EQ(disp.bytes_to[size_t(p)], rows_to * (kHidden + 2 * kTopK) * sizeof(float))
          << "dispatch to " << p;
      EXPECT_EQ(comb.bytes_to[size_t(p)], rows_back * kHidden * sizeof(float))
          << "combine to " << p;
    }
  }
}

// Experts are placed 4 per rank (E = 4W, k = 3), so a token's k experts can sit on one rank.

// Every token to ranks 0, 1 and the last: at np 2 each rank sends all its tokens to its peer
// straight from the input; at np 4 rank 2 gets nothing.
std::vector<int32_t> wide(int64_t t, int W) {
  return {int32_t(t % 4), int32_t(4 + t % 4), int32_t(4 * (W - 1) + (t + 1) % 4)};
}

// Every token to ranks 0, 1 and the last: the peers' rows go from the input as they are.
Routing in_place_routing(int W) {
  return {[](int r) { return 7 + r; }, [W](int, int64_t t) { return wide(t, W); }};
}

// Every third token to the last rank's experts only, the others to rank 0's only: the last
// rank's range is two thirds idle, so its rows are packed.
Routing packed_routing(int W) {
  const int32_t last = int32_t(4 * (W - 1));
  return {[](int r) { return int64_t(9 + 2 * r); },
          [last](int, int64_t t) {
            const int32_t b = t % 3 == 1 ? last : 0;
            return std::vector<int32_t>{b, b + 1, b + 2};
          }};
}

TEST(ExpertDispatch, TokensSentFromTheInputInPlace) {
  const int W = world().size();
  run_case(in_place_routing(W), 4 * W);
}

TEST(ExpertDispatch, AFewUnroutedTokensTravelAsIdleRows) {
  const int W = world().size();
  // Token 3 of every rank stays on rank 0's experts: a hole in every other rank's range.
  run_case({[](int) { return int64_t(12); },
            [W](int, int64_t t) {
              return t == 3 ? std::vector<int32_t>{0, 1, 2} : wide(t, W);
            }},
           4 * W);
}

TEST(ExpertDispatch, ScatteredTokensArePacked) {
  const int W = world().size();
  run_case(packed_routing(W), 4 * W);
}

TEST(ExpertDispatch, ARankWithoutTokens) {
  const int W = world().size();
  const int64_t E = 4 * W;
  run_case({[](int r) { return r == 1 ? int64_t(0) : int64_t(5); },
            [E](int r, int64_t t) {
              return std::vector<int32_t>{int32_t((t + r) % E), int32_t((t + r + 5) % E),
                                          int32_t((t + r + 10) % E)};
            }},
           E);
}

TEST(ExpertDispatch, EverythingToOneRank) {
  const int W = world().size();
  const int32_t last = int32_t(4 * (W - 1));
  run_case({[](int r) { return int64_t(3 + r); },
            [last](int, int64_t t) {
              return std::vector<int32_t>{last + int32_t(t % 2), last + 2, last + 3};
            }},
           4 * W);
}

// --a2a-dtype bf16 through the ops the model runs (moe_align, gather_rows, add_expert_outputs,
// combine), after a reserve(): with payloads and weights that bf16 holds exactly (small
// integers scaled by powers of two; weights in quarters), every sum is exact, so any row lost,
// misrouted or returned to the wrong token shows as an exact mismatch. Both the in-place and
// the packed send paths are taken (wide routing vs every third token).
void run_bf16_case(const Routing& routing, int64_t experts, int64_t capacity = 0) {
  Communicator& comm = world();
  const int W = comm.size(), R = comm.rank();
  const std::unique_ptr<Backend> backend = make_cpu_backend(1);
  const Topology topo = Topology::experts_only(R, W, experts);
  ExpertDispatch d(*backend, comm, topo, kHidden, kTopK);
  d.set_payload_dtype(DType::BF16);
  d.reserve(16);
  d.set_capacity(capacity);
  const int64_t n = routing.tokens(R), El = experts / W;
  int64_t most = 0;
  for (int r = 0; r < W; ++r) most = std::max(most, routing.tokens(r));
  auto exact = [](int rank, int64_t t, int64_t c) {
    return float(rank * 16 + t) * float(1 << (c % 8));  // < 64 * 128: 6 significant bits
  };
  auto quarter = [](int rank, int64_t t, int64_t j) {
    return 0.25f * float(1 + (rank + t + j) % 2);
  };
  float* in = d.input(n);
  std::vector<int32_t> ids(size_t(n * kTopK));
  std::vector<float> w(ids.size());
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t c = 0; c < kHidden; ++c) in[t * kHidden + c] = exact(R, t, c);
    const std::vector<int32_t> e = routing.experts(R, t);
    for (int64_t j = 0; j < kTopK; ++j) {
      ids[size_t(t * kTopK + j)] = e[size_t(j)];
      w[size_t(t * kTopK + j)] = quarter(R, t, j);
    }
  }
  std::vector<float> residual(size_t(std::max<int64_t>(1, n * kHidden)), -1.0f);
  const DispatchHandle h = d.dispatch(n, most, ids.data(), w.data(), residual.data(), 0, nullptr);
  const int64_t P = h.rows * kTopK;
  std::vector<int32_t> offsets(size_t(El + 1)), pair_row(size_t(P + 1)), pair_index(size_t(P + 1)),
      active(static_cast<size_t>(El));
  std::vector<float> rows(size_t((P + 1) * kHidden));
  if (h.rows > 0) {
    backend->moe_align(offsets.data(), pair_row.data(), pair_index.data(), active.data(), h.ids,
                       h.rows, kTopK, El);
    backend->gather_rows(rows.data(), h.row_data, pair_row.data(), P, kHidden);
    add_expert_outputs(*backend, h, rows.data(), pair_index.data(), kTopK, kHidden);
  }
  d.combine(h, nullptr);
  for (int64_t t = 0; t < n; ++t) {
    float wsum = 0;
    for (int64_t j = 0; j < kTopK; ++j) wsum += quarter(R, t, j);
    for (int64_t c = 0; c < kHidden; ++c)
      ASSERT_EQ(residual[size_t(t * kHidden + c)], wsum * exact(R, t, c) - 1.0f)
          << "rank " << R << " token " << t << " col " << c;
  }
}

TEST(ExpertDispatch, Bf16PayloadInPlaceRangesSumExactly) {
  const int W = world().size();
  run_bf16_case(in_place_routing(W), 4 * W);
}

TEST(ExpertDispatch, Bf16PayloadPackedRowsSumExactly) {
  const int W = world().size();
  run_bf16_case(packed_routing(W), 4 * W);
}

// The fixed-capacity exchange on the same routings: exactly full (the largest rank's tokens),
// with room to spare, with a rank that has no tokens, and in bf16.
TEST(ExpertDispatch, FixedCapacityExactlyFull) {
  const int W = world().size();
  run_case(in_place_routing(W), 4 * W, 7 + W - 1);
  run_case(packed_routing(W), 4 * W, 9 + 2 * (W - 1));
}

TEST(ExpertDispatch, FixedCapacityWithRoomToSpare) {
  const int W = world().size();
  run_case(packed_routing(W), 4 * W, 40);
  run_case({[](int) { return int64_t(12); },
            [W](int, int64_t t) {
              return t == 3 ? std::vector<int32_t>{0, 1, 2} : wide(t, W);
            }},
           4 * W, 13);
}

TEST(ExpertDispatch, FixedCapacityARankWithoutTokens) {
  const int W = world().size();
  const int64_t E = 4 * W;
  run_case({[](int r) { return r == 1 ? int64_t(0) : int64_t(2); },
            [E](int r, int64_t t) {
              return std::vector<int32_t>{int32_t((t + r) % E), int32_t((t + r + 5) % E),
                                          int32_t((t + r + 10) % E)};
            }},
           E, 4);
}

TEST(ExpertDispatch, FixedCapacityBf16SumsExactly) {
  const int W = world().size();
  run_bf16_case(in_place_routing(W), 4 * W, 16);
  run_bf16_case(packed_routing(W), 4 * W, 9 + 2 * (W - 1));
}

// A call with more tokens on some rank than the capacity takes the counted exchange on every
// rank (they agree through max_rank_tokens), and set_capacity bounds its argument.
TEST(ExpertDispatch, OverCapacityTakesTheCountedExchange) {
  const int W = world().size();
  Communicator& comm = world();
  const std::unique_ptr<Backend> backend = make_cpu_backend(1);
  const Topology topo = Topology::experts_only(comm.rank(), W, 4 * W);
  ExpertDispatch d(*backend, comm, topo, kHidden, kTopK);
  d.set_capacity(4);
  EXPECT_FALSE(d.fixed(5));
  EXPECT_EQ(d.fixed(4), W > 1);
  EXPECT_THROW(d.set_capacity(-1), Error);
  EXPECT_THROW(d.set_capacity(int64_t(1) << 40), Error);
  run_case(packed_routing(W), 4 * W, 3);  // 9 + 2r tokens on rank r
}

}  // namespace
}  // namespace qwen3moe
