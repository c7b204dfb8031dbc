// The device-shaped MoE ops of kernels/cpu (moe_align, moe_matmul, moe_combine, fill_random)
// against plain references written here: they are the twins the CUDA kernels are held to, so
// they must be right on their own. Outputs start as sentinels so an unwritten entry shows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/common/check.h"
#include "kernels/common/dtype.h"
#include "kernels/cpu/ops.h"

namespace qwen3moe {
namespace {

// Top-k ids as a router makes them: k distinct experts per token, in no particular order.
std::vector<int32_t> random_ids(int64_t T, int64_t k, int64_t E, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(T * k)), all(static_cast<size_t>(E));
  std::iota(all.begin(), all.end(), 0);
  for (int64_t t = 0; t < T; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    std::copy_n(all.begin(), k, ids.begin() + t * k);
  }
  return ids;
}

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

struct Aligned {
  std::vector<int32_t> offsets, pair_token, pair_index, active;
};

Aligned align(const std::vector<int32_t>& ids, int64_t T, int64_t k, int64_t E) {
  Aligned a;
  a.offsets.assign(size_t(E + 1), -7);
  a.pair_token.assign(size_t(T * k), -7);
  a.pair_index.assign(size_t(T * k), -7);
  a.active.assign(size_t(E), -7);
  cpu::moe_align(a.offsets.data(), a.pair_token.data(), a.pair_index.data(), a.active.data(),
                 ids.data(), T, k, E);
  return a;
}

TEST(MoeKernels, AlignSortsPairsByExpertThenToken) {
  for (auto [T, k, E] : {std::tuple<int64_t, int64_t, int64_t>{1, 8, 128},
                         {5, 2, 8},
                         {64, 8, 128},
                         {300, 8, 128},
                         {37, 4, 16}}) {
    const std::vector<int32_t> ids = random_ids(T, k, E, uint32_t(T * 31 + E));
    const Aligned a = align(ids, T, k, E);
    // Reference: every (expert, token, j) triple sorted.
    std::vector<std::tuple<int32_t, int32_t, int64_t>> pairs;
    for (int64_t i = 0; i < T * k; ++i) pairs.emplace_back(ids[size_t(i)], int32_t(i / k), i);
    std::sort(pairs.begin(), pairs.end());
    for (size_t p = 0; p < pairs.size(); ++p) {
      EXPECT_EQ(a.pair_token[p], std::get<1>(pairs[p])) << "pair " << p;
      EXPECT_EQ(a.pair_index[size_t(std::get<2>(pairs[p]))], int32_t(p)) << "pair " << p;
    }
    std::vector<int32_t> active;
    for (int64_t e = 0; e < E; ++e) {
      const auto lo = std::lower_bound(pairs.begin(), pairs.end(),
                                       std::make_tuple(int32_t(e), INT32_MIN, int64_t(0)));
      EXPECT_EQ(a.offsets[size_t(e)], lo - pairs.begin()) << "expert " << e;
      if (std::count(ids.begin(), ids.end(), int32_t(e))) active.push_back(int32_t(e));
    }
    EXPECT_EQ(a.offsets[size_t(E)], T * k);
    active.resize(size_t(E), -1);
    EXPECT_EQ(a.active, active);
  }
}

TEST(MoeKernels, AlignDropsIdsOutsideTheExperts) {
  const std::vector<int32_t> ids = {3, -1, 0, 8, 3, 1};  // T = 3, k = 2, E = 4
  const Aligned a = align(ids, 3, 2, 4);
  EXPECT_EQ(a.offsets, (std::vector<int32_t>{0, 1, 2, 2, 4}));
  EXPECT_EQ(a.pair_index, (std::vector<int32_t>{2, -1, 0, -1, 3, 1}));
  EXPECT_EQ(a.pair_token, (std::vector<int32_t>{1, 2, 0, 2, 0, 0}));  // the 2 tail slots: 0
  EXPECT_EQ(a.active, (std::vector<int32_t>{0, 1, 3, -1}));
}

// moe_matmul over the sorted pairs equals one plain dot product per (pair, output).
TEST(MoeKernels, MatmulEqualsPerPairReference) {
  const int64_t T = 23, k = 3, E = 6, N = 40, K = 72;
  const std::vector<int32_t> ids = random_ids(T, k, E, 5);
  const Aligned a = align(ids, T, k, E);
  std::vector<std::vector<uint16_t>> w(static_cast<size_t>(E));
  std::vector<const void*> table(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    const std::vector<float> wf = randn(size_t(N * K), uint32_t(100 + e), 0.1f);
    for (float v : wf) w[size_t(e)].push_back(f32_to_bf16(v));
    table[size_t(e)] = w[size_t(e)].data();
  }
  const ExpertWeights ew{table.data(), DType::BF16, N, K};
  const std::vector<float> x = randn(size_t(T * k * K), 9);
  std::vector<float> y(size_t(T * k * N), 1e30f);
  cpu::moe_matmul(y.data(), x.data(), ew, a.offsets.data(), a.active.data(), E, T * k, T);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t p = a.offsets[size_t(e)]; p < a.offsets[size_t(e + 1)]; ++p)
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0;
        for (int64_t kk = 0; kk < K; ++kk)
          ref += double(x[size_t(p * K + kk)]) * bf16_to_f32(w[size_t(e)][size_t(n * K + kk)]);
        ASSERT_NEAR(y[size_t(p * N + n)], ref, 1e-4 * (1 + std::fabs(ref)))
            << "expert " << e << " pair " << p << " n " << n;
      }
}

// moe_swiglu is silu(gate) * up of the two grouped GEMMs.
TEST(MoeKernels, SwigluIsSiluOfGateTimesUp) {
  const int64_t T = 11, k = 2, E = 4, I = 24, H = 32;
  const std::vector<int32_t> ids = random_ids(T, k, E, 61);
  const Aligned a = align(ids, T, k, E);
  std::vector<uint16_t> g16, u16;
  for (float v : randn(size_t(E * I * H), 62, 0.2f)) g16.push_back(f32_to_bf16(v));
  for (float v : randn(size_t(E * I * H), 63, 0.2f)) u16.push_back(f32_to_bf16(v));
  std::vector<const void*> gt, ut;
  for (int64_t e = 0; e < E; ++e) {
    gt.push_back(g16.data() + e * I * H);
    ut.push_back(u16.data() + e * I * H);
  }
  const ExpertWeights gate{gt.data(), DType::BF16, I, H}, up{ut.data(), DType::BF16, I, H};
  const std::vector<float> x = randn(size_t(T * k * H), 64);
  std::vector<float> act(size_t(T * k * I)), gs(act.size()), us(act.size());
  cpu::moe_swiglu(act.data(), gs.data(), us.data(), x.data(), gate, up, a.offsets.data(),
                  a.active.data(), E, T * k, T);
  std::vector<float> g(act.size()), u(act.size());
  cpu::moe_matmul(g.data(), x.data(), gate, a.offsets.data(), a.active.data(), E, T * k, T);
  cpu::moe_matmul(u.data(), x.data(), up, a.offsets.data(), a.active.data(), E, T * k, T);
  for (size_t i = 0; i < act.size(); ++i)
    ASSERT_NEAR(act[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i],
                1e-5 * (1 + std::fabs(act[i])))
        << i;
}

TEST(MoeKernels, CombineAddsEachTokensWeightedExpertRows) {
  const int64_t T = 7, k = 3, E = 5, D = 33;
  const std::vector<int32_t> ids = random_ids(T, k, E, 11);
  Aligned a = align(ids, T, k, E);
  a.pair_index[4] = -1;  // a dropped pair adds nothing
  const std::vector<float> in = randn(size_t(T * k * D), 12), w = randn(size_t(T * k), 13);
  std::vector<float> out = randn(size_t(T * D), 14), ref = out;
  cpu::moe_combine(out.data(), in.data(), a.pair_index.data(), w.data(), T, k, D);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t d = 0; d < D; ++d) {
      double s = ref[size_t(t * D + d)];
      for (int64_t j = 0; j < k; ++j) {
        const int32_t p = a.pair_index[size_t(t * k + j)];
        if (p >= 0) s += double(w[size_t(t * k + j)]) * in[size_t(p * D + d)];
      }
      ASSERT_NEAR(out[size_t(t * D + d)], s, 1e-5 * (1 + std::fabs(s))) << t << "," << d;
    }
}

// The whole device-shaped MoE (align, gather, grouped GEMM, combine) equals the host-offset
// grouped GEMM and scatter-add the model used before.
TEST(MoeKernels, DevicePathEqualsHostOffsetPath) {
  const int64_t T = 9, k = 2, E = 4, H = 24, I = 16;
  const std::vector<int32_t> ids = random_ids(T, k, E, 21);
  const std::vector<float> topw = randn(size_t(T * k), 22), h = randn(size_t(T * H), 23);
  std::vector<uint16_t> wbuf;
  for (float v : randn(size_t(E * I * H), 24, 0.2f)) wbuf.push_back(f32_to_bf16(v));
  std::vector<Weight> ws;
  std::vector<const void*> table;
  for (int64_t e = 0; e < E; ++e) {
    ws.push_back(Weight{wbuf.data() + e * I * H, DType::BF16, I, H, H});
    table.push_back(ws.back().data);
  }
  const Aligned a = align(ids, T, k, E);
  std::vector<float> rows(size_t(T * k * H)), y(size_t(T * k * I)), out(size_t(T * I), 0.5f);
  cpu::gather_rows(rows.data(), h.data(), a.pair_token.data(), T * k, H);
  cpu::moe_matmul(y.data(), rows.data(), ExpertWeights{table.data(), DType::BF16, I, H},
                  a.offsets.data(), a.active.data(), E, T * k, T);
  cpu::moe_combine(out.data(), y.data(), a.pair_index.data(), topw.data(), T, k, I);

  std::vector<int64_t> off(a.offsets.begin(), a.offsets.end());
  std::vector<float> pair_w(size_t(T * k)), y2(size_t(T * k * I)), out2(size_t(T * I), 0.5f);
  for (int64_t i = 0; i < T * k; ++i) pair_w[size_t(a.pair_index[size_t(i)])] = topw[size_t(i)];
  cpu::grouped_matmul(y2.data(), rows.data(), ws.data(), off.data(), int(E));
  // The per-pair reference: each sorted pair's row, weighted, added to its token's row.
  for (int64_t p = 0; p < T * k; ++p)
    for (int64_t i = 0; i < I; ++i)
      out2[size_t(a.pair_token[size_t(p)] * I + i)] += pair_w[size_t(p)] * y2[size_t(p * I + i)];
  for (size_t i = 0; i < out.size(); ++i)
    ASSERT_NEAR(out[i], out2[i], 1e-5 * (1 + std::fabs(out2[i]))) << i;
}

TEST(MoeKernels, FillRandomHasItsMeanAndStdAndIsReproducible) {
  const int64_t n = 1 << 18;
  std::vector<float> f(static_cast<size_t>(n));
  std::vector<uint16_t> b(static_cast<size_t>(n));
  cpu::fill_random(f.data(), DType::F32, n, 42, 0.5f, 0.02f);
  cpu::fill_random(b.data(), DType::BF16, n, 42, 0.5f, 0.02f);
  double s = 0, s2 = 0;
  for (float v : f) {
    s += v;
    s2 += double(v) * v;
  }
  const double mean = s / double(n), std = std::sqrt(s2 / double(n) - mean * mean);
  EXPECT_NEAR(mean, 0.5, 2e-4);
  EXPECT_NEAR(std, 0.02, 2e-4);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[size_t(i)], f32_to_bf16(f[size_t(i)])) << i;
  std::vector<float> g(static_cast<size_t>(n)), other(static_cast<size_t>(n));
  cpu::fill_random(g.data(), DType::F32, n, 42, 0.5f, 0.02f);
  cpu::fill_random(other.data(), DType::F32, n, 43, 0.5f, 0.02f);
  EXPECT_EQ(f, g);
  EXPECT_NE(f, other);
}

TEST(MoeKernels, CombineWritesWithoutAccumulateAndSumsWithoutWeights) {
  const int64_t T = 6, k = 3, D = 17;
  const std::vector<float> in = randn(size_t(T * k * D), 21), w = randn(size_t(T * k), 22);
  std::vector<int32_t> idx(size_t(T * k));
  std::iota(idx.begin(), idx.end(), 0);
  idx[1] = -1;
  for (int64_t j = 0; j < k; ++j) idx[size_t(2 * k + j)] = -1;  // token 2: no pairs
  // accumulate=false writes the sum over whatever was there (NaN here), 0 for token 2.
  std::vector<float> written(size_t(T * D), std::nanf("")), added(size_t(T * D), 0.0f);
  cpu::moe_combine(written.data(), in.data(), idx.data(), w.data(), T, k, D, false);
  cpu::moe_combine(added.data(), in.data(), idx.data(), w.data(), T, k, D, true);
  EXPECT_EQ(written, added);  // bit for bit: 0 + x is x
  // weights null: every pair counts once.
  std::vector<float> ones(size_t(T * k), 1.0f), a(size_t(T * D), 0.5f), b = a;
  cpu::moe_combine(a.data(), in.data(), idx.data(), nullptr, T, k, D);
  cpu::moe_combine(b.data(), in.data(), idx.data(), ones.data(), T, k, D);
  EXPECT_EQ(a, b);
}

// Expert placement of the dispatch tests: E experts over W ranks, scrambled (not blocks), so
// the ops read the tables rather than assume contiguous blocks.
struct Placement {
  std::vector<int32_t> owner, local;
};
Placement scrambled(int64_t E, int64_t W, uint32_t seed) {
  std::vector<int32_t> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(seed));
  Placement p{std::vector<int32_t>(size_t(E)), std::vector<int32_t>(size_t(E))};
  for (int64_t i = 0; i < E; ++i) {
    p.owner[size_t(order[size_t(i)])] = int32_t(i % W);
    p.local[size_t(order[size_t(i)])] = int32_t(i / W);
  }
  return p;
}

bool goes_to(const std::vector<int32_t>& ids, const Placement& pl, int64_t t, int64_t k,
             int64_t p) {
  for (int64_t j = 0; j < k; ++j)
    if (pl.owner[size_t(ids[size_t(t * k + j)])] == p) return true;
  return false;
}

TEST(MoeKernels, DispatchCountNamesEachTokensRanksOnce) {
  const int64_t T = 40, k = 4, E = 12, W = 3;
  const Placement pl = scrambled(E, W, 31);
  const std::vector<int32_t> ids = random_ids(T, k, E, 32);
  std::vector<int32_t> stats(size_t(3 * W), -7);
  cpu::moe_dispatch_count(stats.data(), ids.data(), pl.owner.data(), T, k, E, W);
  for (int64_t p = 0; p < W; ++p) {
    int32_t count = 0, first = int32_t(T), last = -1;
    for (int64_t t = 0; t < T; ++t)
      if (goes_to(ids, pl, t, k, p)) {
        ++count;
        first = std::min(first, int32_t(t));
        last = int32_t(t);
      }
    EXPECT_EQ(stats[size_t(p)], count) << "rank " << p;
    EXPECT_EQ(stats[size_t(W + p)], first) << "rank " << p;
    EXPECT_EQ(stats[size_t(2 * W + p)], last) << "rank " << p;
  }
  // A rank no token reaches: count 0, first T, last -1.
  std::vector<int32_t> one_rank(size_t(E), 0);
  cpu::moe_dispatch_count(stats.data(), ids.data(), one_rank.data(), T, k, E, W);
  EXPECT_EQ(stats[1], 0);
  EXPECT_EQ(stats[size_t(W + 1)], int32_t(T));
  EXPECT_EQ(stats[size_t(2 * W + 1)], -1);
}

// Rank 1 of 3: rank 0's rows go in place (the range [2, T)), rank 2's are packed.
TEST(MoeKernels, DispatchPackFollowsThePlan) {
  const int64_t T = 10, k = 3, E = 9, W = 3, rank = 1;
  const Placement pl = scrambled(E, W, 41);
  std::vector<int32_t> ids = random_ids(T, k, E, 42);
  // Tokens 0 and 1 avoid rank 0, so its range starts at 2 (the plan must cover its tokens).
  std::vector<int32_t> elsewhere;
  for (int32_t e = 0; e < E; ++e)
    if (pl.owner[size_t(e)] != 0) elsewhere.push_back(e);
  for (int64_t j = 0; j < k; ++j) {
    ids[size_t(j)] = elsewhere[size_t(j)];
    ids[size_t(k + j)] = elsewhere[elsewhere.size() - 1 - size_t(j)];
  }
  const std::vector<float> w = randn(size_t(T * k), 43);
  std::vector<int32_t> to2;  // tokens routed to rank 2, in order
  for (int64_t t = 0; t < T; ++t)
    if (goes_to(ids, pl, t, k, 2)) to2.push_back(int32_t(t));
  const int64_t packed = int64_t(to2.size()), range0 = T - 2;
  // plan [4, W]: first row, rows, meta row, back row.
  const int64_t back0 = 100, back2 = 200;
  std::vector<int32_t> plan = {2,
                               0,
                               int32_t(T),  // first
                               int32_t(range0),
                               int32_t(T),
                               int32_t(packed),  // rows
                               0,
                               0,
                               int32_t(range0),  // meta row
                               int32_t(back0),
                               0,
                               int32_t(back2)};  // back row
  const int64_t sent = range0 + packed;
  std::vector<int32_t> pack_src(size_t(packed), -7), combine_rows(size_t(T * W), -7),
      send_meta(size_t(2 * sent * k), -7), own_ids(size_t((T + packed) * k), -7);
  std::vector<float> own_w(size_t(T * k), -7.0f);
  // Peer p's meta block: its rows' ids, then their weights (float bits).
  auto sent_id = [&](int64_t block_row, int64_t, int64_t slot, int64_t j) {
    return send_meta[size_t(2 * k * block_row + slot * k + j)];
  };
  auto sent_w = [&](int64_t block_row, int64_t rows, int64_t slot, int64_t j) {
    float f;
    std::memcpy(&f, &send_meta[size_t(2 * k * block_row + (rows + slot) * k + j)], sizeof(f));
    return f;
  };
  MoeDispatchPack a;
  a.ids = ids.data();
  a.weights = w.data();
  a.owner = pl.owner.data();
  a.local = pl.local.data();
  a.plan = plan.data();
  a.pack_src = pack_src.data();
  a.combine_rows = combine_rows.data();
  a.send_meta = send_meta.data();
  a.own_ids = own_ids.data();
  a.own_weights = own_w.data();
  a.tokens = T;
  a.k = k;
  a.experts = E;
  a.world = W;
  a.rank = rank;
  a.packed = packed;
  cpu::moe_dispatch_pack(a);

  auto local_or_none = [&](int64_t t, int64_t j, int64_t p) {
    const int32_t e = ids[size_t(t * k + j)];
    return pl.owner[size_t(e)] == p ? pl.local[size_t(e)] : -1;
  };
  for (int64_t i = 0; i < packed; ++i) EXPECT_EQ(pack_src[size_t(i)], to2[size_t(i)]);
  for (int64_t t = 0; t < T; ++t) {
    // Own rows: nothing to combine (the experts add into the residual), experts as local ids.
    EXPECT_EQ(combine_rows[size_t(t * W + rank)], -1);
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(own_ids[size_t(t * k + j)], local_or_none(t, j, rank));
      EXPECT_EQ(own_w[size_t(t * k + j)], w[size_t(t * k + j)]);
    }
    // Rank 0, in place: token t >= 2 is row t - 2 of the block, routed or idle.
    const bool r0 = goes_to(ids, pl, t, k, 0);
    EXPECT_EQ(combine_rows[size_t(t * W)], r0 ? int32_t(back0 + t - 2) : -1) << t;
    if (t >= 2)
      for (int64_t j = 0; j < k; ++j) {
        EXPECT_EQ(sent_id(0, range0, t - 2, j), local_or_none(t, j, 0));
        EXPECT_EQ(sent_w(0, range0, t - 2, j), w[size_t(t * k + j)]);
      }
  }
  // Rank 2, packed: its i-th token is row i of its block, meta after rank 0's rows.
  for (int64_t i = 0; i < packed; ++i) {
    const int64_t t = to2[size_t(i)];
    EXPECT_EQ(combine_rows[size_t(t * W + 2)], int32_t(back2 + i));
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(sent_id(range0, packed, i, j), local_or_none(t, j, 2));
      EXPECT_EQ(sent_w(range0, packed, i, j), w[size_t(t * k + j)]);
    }
  }
  for (int64_t t = 0; t < T; ++t) {
    if (!goes_to(ids, pl, t, k, 2)) {
      EXPECT_EQ(combine_rows[size_t(t * W + 2)], -1);
    }
  }
  // The packed rows carry no local experts.
  for (int64_t i = T * k; i < (T + packed) * k; ++i) EXPECT_EQ(own_ids[size_t(i)], -1);
}

// The fixed-capacity exchange: every peer's block is the input rows [0, C), the rows past the
// tokens idle (ids -1, weights 0), the own padding rows without experts; also with no tokens.
TEST(MoeKernels, DispatchPackFixedCapacityPadsEveryBlockToTheCapacity) {
  const int64_t k = 2, E = 6, W = 3, rank = 1, C = 7;
  const Placement pl = scrambled(E, W, 44);
  for (const int64_t T : {int64_t(5), int64_t(0), C}) {
    const std::vector<int32_t> ids = random_ids(std::max<int64_t>(T, 1), k, E, 45);
    const std::vector<float> w = randn(size_t(std::max<int64_t>(T, 1) * k), 46);
    // [4, W]: first row and rows unused; meta row and back row per peer slot.
    const std::vector<int32_t> plan = {
        -5, 0, -5, -5, int32_t(T), -5, 0, 0, int32_t(C), int32_t(3 * C), 0, int32_t(4 * C)};
    std::vector<int32_t> combine_rows(size_t(std::max<int64_t>(T, 1) * W), -7),
        send_meta(size_t(2 * 2 * C * k), -7), own_ids(size_t(C * k), -7);
    std::vector<float> own_w(size_t(std::max<int64_t>(T, 1) * k), -7.0f);
    MoeDispatchPack a;
    a.ids = ids.data();
    a.weights = w.data();
    a.owner = pl.owner.data();
    a.local = pl.local.data();
    a.plan = plan.data();
    a.combine_rows = combine_rows.data();
    a.send_meta = send_meta.data();
    a.own_ids = own_ids.data();
    a.own_weights = own_w.data();
    a.tokens = T;
    a.k = k;
    a.experts = E;
    a.world = W;
    a.rank = rank;
    a.packed = C - T;
    a.capacity = C;
    cpu::moe_dispatch_pack(a);
    for (const int64_t p : {int64_t(0), int64_t(2)}) {
      const int64_t meta_row = p == 0 ? 0 : C, back_row = p == 0 ? 3 * C : 4 * C;
      const int32_t* block = send_meta.data() + 2 * k * meta_row;
      for (int64_t slot = 0; slot < C; ++slot)
        for (int64_t j = 0; j < k; ++j) {
          float f;
          std::memcpy(&f, block + (C + slot) * k + j, sizeof(f));
          if (slot < T) {
            const int32_t e = ids[size_t(slot * k + j)];
            EXPECT_EQ(block[slot * k + j], pl.owner[size_t(e)] == p ? pl.local[size_t(e)] : -1);
            EXPECT_EQ(f, w[size_t(slot * k + j)]);
          } else {
            EXPECT_EQ(block[slot * k + j], -1) << "T " << T << " peer " << p << " row " << slot;
            EXPECT_EQ(f, 0.0f);
          }
        }
      for (int64_t t = 0; t < T; ++t) {
        EXPECT_EQ(combine_rows[size_t(t * W + p)],
                  goes_to(ids, pl, t, k, p) ? int32_t(back_row + t) : -1);
      }
    }
    for (int64_t i = T * k; i < C * k; ++i) EXPECT_EQ(own_ids[size_t(i)], -1);
  }
  // More tokens than the capacity is an error, never a truncation.
  std::vector<int32_t> plan(size_t(4 * W), 0);
  MoeDispatchPack over;
  over.tokens = C + 1;
  over.k = k;
  over.world = W;
  over.capacity = C;
  over.plan = plan.data();
  EXPECT_THROW(cpu::moe_dispatch_pack(over), Error);
}

TEST(MoeKernels, Bf16PayloadRoundsToNearestEvenAndWidensExactly) {
  const int64_t n = 5, dim = 19;
  const std::vector<float> in = randn(size_t(7 * dim), 51, 100.0f);
  const std::vector<int32_t> idx = {6, 0, 3, 3, 1};
  std::vector<uint16_t> half(size_t(n * dim), 0xdead), plain(size_t(n * dim), 0xdead);
  cpu::rows_to_bf16(half.data(), in.data(), idx.data(), n, dim);
  cpu::rows_to_bf16(plain.data(), in.data(), nullptr, n, dim);
  std::vector<float> back(size_t(n * dim), -1.0f);
  cpu::rows_to_f32(back.data(), half.data(), n, dim);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < dim; ++d) {
      const float x = in[size_t(idx[size_t(i)] * dim + d)];
      EXPECT_EQ(half[size_t(i * dim + d)], f32_to_bf16(x));
      EXPECT_EQ(plain[size_t(i * dim + d)], f32_to_bf16(in[size_t(i * dim + d)]));
      EXPECT_EQ(back[size_t(i * dim + d)], bf16_to_f32(f32_to_bf16(x)));
      EXPECT_LE(std::fabs(back[size_t(i * dim + d)] - x), std::fabs(x) / 256);
    }
}

}  // namespace
}  // namespace qwen3moe
