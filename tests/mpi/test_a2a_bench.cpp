// The a2a-bench core under mpirun -np 2 and -np 4: the raw sweep delivers every payload value
// to the right place, the dispatch bench's byte accounting equals the (token, destination rank)
// pairs of its router, its combine check passes, and zipf routing is measurably more skewed
// than uniform.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "bench/a2a_bench.h"
#include "kernels/common/check.h"
#include "mpi_world.h"

namespace qwen3moe::bench {
namespace {

Backend& backend() {
  static const std::unique_ptr<Backend> b = make_cpu_backend(1);
  return *b;
}

using testing::world;

// Small and quick: the tests run oversubscribed on 2 cores.
DispatchBenchOptions small_dispatch(const std::string& routing) {
  DispatchBenchOptions o;
  o.tokens = 96;
  o.hidden = 64;
  o.experts = 16;
  o.top_k = 3;
  o.routing = routing;
  o.seed = 7;
  o.iters = 2;
  o.warmup = 1;
  return o;
}

TEST(A2aBench, SweepSizesAreWholeFloatsPerPeerAndGrow) {
  const int W = world().size();
  AlltoallSweepOptions o;
  o.min_bytes = 100;
  o.max_bytes = 10000;
  o.step_factor = 3;
  const std::vector<size_t> sizes = sweep_sizes(o, W);
  ASSERT_FALSE(sizes.empty());
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_EQ(sizes[i] % (size_t(W) * sizeof(float)), 0u) << sizes[i];
    EXPECT_LE(sizes[i], o.max_bytes);
    if (i) {
      EXPECT_GT(sizes[i], sizes[i - 1]);
    }
  }
  EXPECT_LE(sizes.front(), o.min_bytes);
  EXPECT_GT(sizes.back() * 3, o.max_bytes);  // the sweep got within one step of the top
}

TEST(A2aBench, SweepDeliversEveryValue) {
  const int W = world().size();
  AlltoallSweepOptions o;
  o.min_bytes = size_t(W) * sizeof(float);  // one float per peer
  o.max_bytes = 1 << 18;
  o.step_factor = 4;
  o.iters = 2;
  o.warmup = 1;
  const std::vector<AlltoallRow> rows = run_alltoall_sweep(world(), o);
  ASSERT_EQ(rows.size(), sweep_sizes(o, W).size());
  for (const AlltoallRow& r : rows) {
    EXPECT_EQ(r.wrong, 0) << "size " << r.bytes;
    EXPECT_EQ(r.count * sizeof(float), r.bytes);
    EXPECT_GT(r.time_us, 0) << "size " << r.bytes;
    EXPECT_GT(r.algbw_gbs, 0) << "size " << r.bytes;
    EXPECT_DOUBLE_EQ(r.busbw_gbs, r.algbw_gbs * double(W - 1) / double(W));
  }
}

// Payloads differ across sources, destinations and indices, so a misroute cannot pass.
TEST(A2aBench, PayloadNamesSourceDestinationAndIndex) {
  std::set<float> seen;
  for (int s = 0; s < 4; ++s)
    for (int d = 0; d < 4; ++d)
      for (size_t i = 0; i < 64; ++i) seen.insert(alltoall_payload(s, d, i));
  EXPECT_GT(seen.size(), size_t(4 * 4 * 64 - 4));  // a hash into 2^24 values: next to no ties
}

// --a2a-dtype bf16: the same routes (the identity experts' check, at bf16 tolerance, finds no
// wrong value), with 2 bytes per hidden value instead of 4 both ways: at most 0.55x the bytes.
TEST(A2aBench, Bf16PayloadRoutesTheSameWithHalfTheBytes) {
  DispatchBenchOptions o = small_dispatch("uniform");
  o.hidden = 256;  // rows long enough that the exact ids and weights weigh little
  const DispatchBenchResult f32 = run_dispatch_bench(backend(), world(), o);
  o.a2a_dtype = "bf16";
  const DispatchBenchResult bf16 = run_dispatch_bench(backend(), world(), o);
  EXPECT_EQ(bf16.wrong, 0);
  EXPECT_EQ(bf16.pairs, f32.pairs);
  EXPECT_LE(bf16.mean_rank_bytes, 0.55 * f32.mean_rank_bytes);
  const uint64_t row = uint64_t(o.hidden) * 2 + uint64_t(2 * o.top_k) * sizeof(float);
  EXPECT_EQ(bf16.dispatch_bytes, uint64_t(bf16.pairs) * row);
}

TEST(A2aBench, DispatchBytesMatchTokenRankPairs) {
  const int W = world().size(), R = world().rank();
  const DispatchBenchOptions o = small_dispatch("uniform");
  const DispatchBenchResult r = run_dispatch_bench(backend(), world(), o);
  EXPECT_EQ(r.wrong, 0);
  EXPECT_EQ(r.checked, 2 * int64_t(W) * o.tokens * o.hidden);

  // The (token, destination rank) pairs, recounted from the same router.
  std::vector<int32_t> ids;
  std::vector<float> weights;
  synthetic_routing(o, R, ids, weights);
  const int64_t per_rank = o.experts / W;
  int64_t pairs = 0;
  for (int64_t t = 0; t < o.tokens; ++t) {
    std::set<int64_t> dest;
    for (int64_t j = 0; j < o.top_k; ++j) dest.insert(ids[size_t(t * o.top_k + j)] / per_rank);
    pairs += int64_t(dest.size());
  }
  EXPECT_EQ(r.pairs, pairs);
  const uint64_t dispatch_row = uint64_t(o.hidden + 2 * o.top_k) * sizeof(float);
  EXPECT_EQ(r.dispatch_bytes, uint64_t(pairs) * dispatch_row);

  // Combine returns one hidden row per pair, so over the job it moves pairs × hidden floats.
  std::vector<uint64_t> all_pairs(static_cast<size_t>(W));
  const uint64_t mine = uint64_t(pairs);
  world().all_gather(&mine, all_pairs.data(), sizeof(uint64_t));
  uint64_t job_pairs = 0;
  for (uint64_t p : all_pairs) job_pairs += p;
  uint64_t combine_sum = 0, matrix_sum = 0;
  {
    std::vector<uint64_t> all_combine(static_cast<size_t>(W));
    world().all_gather(&r.combine_bytes, all_combine.data(), sizeof(uint64_t));
    for (uint64_t b : all_combine) combine_sum += b;
  }
  for (uint64_t b : r.bytes_matrix) matrix_sum += b;
  EXPECT_EQ(combine_sum, job_pairs * uint64_t(o.hidden) * sizeof(float));
  EXPECT_EQ(matrix_sum, job_pairs * (dispatch_row + uint64_t(o.hidden) * sizeof(float)));
  EXPECT_DOUBLE_EQ(r.mean_rank_bytes, double(matrix_sum) / double(W));

  // Combine's matrix is dispatch's transposed: what went p -> q comes back q -> p.
  ASSERT_EQ(r.bytes_matrix.size(), size_t(W * W));
  const uint64_t combine_row = uint64_t(o.hidden) * sizeof(float);
  for (int p = 0; p < W; ++p)
    for (int q = 0; q < W; ++q) {
      const uint64_t pq = r.bytes_matrix[size_t(p * W + q)], qp = r.bytes_matrix[size_t(q * W + p)];
      // pq = rows(p->q)·dispatch_row + rows(q->p)·combine_row, and symmetrically for qp.
      const uint64_t unit = dispatch_row + combine_row;
      if (p == q) {
        EXPECT_EQ(pq % unit, 0u);
      }
      EXPECT_EQ((pq + qp) % unit, 0u);
    }

  // Every token-expert pair is counted once.
  int64_t tokens = 0;
  for (int64_t c : r.tokens_per_expert) tokens += c;
  EXPECT_EQ(tokens, int64_t(W) * o.tokens * o.top_k);
  EXPECT_GT(r.time_us, 0);
  EXPECT_GT(r.raw_us, 0);
  EXPECT_GT(r.ratio, 0);
}

TEST(A2aBench, ZipfIsMoreImbalancedThanUniform) {
  const DispatchBenchResult uniform =
      run_dispatch_bench(backend(), world(), small_dispatch("uniform"));
  const DispatchBenchResult zipf =
      run_dispatch_bench(backend(), world(), small_dispatch("zipf:1.2"));
  EXPECT_EQ(uniform.wrong, 0);
  EXPECT_EQ(zipf.wrong, 0);
  // Uniform: about 1 (sampling noise); zipf piles onto the low expert ids, i.e. rank 0's block.
  EXPECT_LT(uniform.expert_imbalance, 1.6);
  EXPECT_GT(zipf.expert_imbalance, uniform.expert_imbalance + 1.0);
  EXPECT_GT(zipf.rank_imbalance, uniform.rank_imbalance + 0.2);
  EXPECT_GT(zipf.tokens_per_expert.front(), zipf.tokens_per_expert.back() * 3);
}

TEST(A2aBench, RoutingIsDistinctNormalisedAndSeeded) {
  DispatchBenchOptions o = small_dispatch("zipf:2");
  std::vector<int32_t> ids, ids2;
  std::vector<float> w, w2;
  synthetic_routing(o, 1, ids, w);
  synthetic_routing(o, 1, ids2, w2);
  EXPECT_EQ(ids, ids2);
  synthetic_routing(o, 2, ids2, w2);
  EXPECT_NE(ids, ids2);  // every rank routes its own tokens
  for (int64_t t = 0; t < o.tokens; ++t) {
    std::set<int32_t> distinct;
    float sum = 0;
    for (int64_t j = 0; j < o.top_k; ++j) {
      const int32_t e = ids[size_t(t * o.top_k + j)];
      EXPECT_GE(e, 0);
      EXPECT_LT(e, o.experts);
      distinct.insert(e);
      EXPECT_GT(w[size_t(t * o.top_k + j)], 0);
      sum += w[size_t(t * o.top_k + j)];
    }
    EXPECT_EQ(distinct.size(), size_t(o.top_k)) << "token " << t;
    EXPECT_NEAR(sum, 1.0f, 1e-5f);
  }
  // top_k = experts: every expert exactly once, even under a steep zipf.
  o.top_k = o.experts;
  synthetic_routing(o, 0, ids, w);
  std::set<int32_t> all(ids.begin(), ids.begin() + o.top_k);
  EXPECT_EQ(all.size(), size_t(o.experts));
}

TEST(A2aBench, BadOptionsNameTheProblem) {
  const int W = world().size();
  auto message = [](const std::function<void()>& fn) -> std::string {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  AlltoallSweepOptions s;
  s.min_bytes = 4096;
  s.max_bytes = 1024;
  EXPECT_NE(message([&] { validate(s, W); }).find("--min-bytes 4096 exceeds --max-bytes 1024"),
            std::string::npos);
  s = {};
  s.step_factor = 1;
  EXPECT_NE(message([&] { validate(s, W); }).find("--step-factor"), std::string::npos);
  s = {};
  s.min_bytes = 4;
  if (W > 1) {
    EXPECT_NE(message([&] { validate(s, W); }).find("less than one float per peer"),
              std::string::npos);
  }
  DispatchBenchOptions d = small_dispatch("zipf:-1");
  EXPECT_NE(message([&] { validate(d, W); }).find("positive exponent"), std::string::npos);
  d = small_dispatch("zipf");
  EXPECT_NE(message([&] { validate(d, W); }).find("uniform or zipf:S"), std::string::npos);
  d = small_dispatch("uniform");
  d.experts = 4 * W + 1;
  if (W > 1) {
    EXPECT_NE(message([&] { validate(d, W); }).find("cannot be split over"), std::string::npos);
  }
}

}  // namespace
}  // namespace qwen3moe::bench
