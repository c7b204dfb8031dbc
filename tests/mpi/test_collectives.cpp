// Every MPI collective with payloads that encode (source rank, index), so a wrong route or
// offset fails with the exact element that went astray. Runs under mpirun -np 2 and -np 4.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "mpi_world.h"

namespace qwen3moe {
namespace {

using testing::world;

// The value rank `src` puts at index i of what it sends to rank `dst`.
float payload(int src, int dst, size_t i) {
  return float(src * 1000000 + dst * 10000 + int(i));
}

TEST(MpiCollectives, AllReduceSumsEveryRank) {
  const int W = world().size(), R = world().rank();
  std::vector<float> buf(1001);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = float(R + 1) * float(i);
  world().all_reduce_sum(buf.data(), buf.size());
  const float ranks_sum = float(W * (W + 1) / 2);
  for (size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], ranks_sum * float(i)) << "index " << i;
}

TEST(MpiCollectives, ReduceScatterGivesEachRankItsBlock) {
  const int W = world().size(), R = world().rank();
  const size_t n = 37;
  std::vector<float> send(size_t(W) * n), recv(n, -1.0f);
  for (int p = 0; p < W; ++p)
    for (size_t i = 0; i < n; ++i) send[size_t(p) * n + i] = payload(R, p, i);
  world().reduce_scatter_sum(send.data(), recv.data(), n);
  for (size_t i = 0; i < n; ++i) {
    float expect = 0;
    for (int s = 0; s < W; ++s) expect += payload(s, R, i);
    ASSERT_EQ(recv[i], expect) << "index " << i;
  }
}

TEST(MpiCollectives, AllGatherKeepsRankOrder) {
  const int W = world().size(), R = world().rank();
  const size_t n = 13;
  std::vector<float> send(n), recv(size_t(W) * n, -1.0f);
  for (size_t i = 0; i < n; ++i) send[i] = payload(R, 0, i);
  world().all_gather(send.data(), recv.data(), n * sizeof(float));
  for (int s = 0; s < W; ++s)
    for (size_t i = 0; i < n; ++i)
      ASSERT_EQ(recv[size_t(s) * n + i], payload(s, 0, i)) << "from rank " << s << " index " << i;
}

// Uneven counts, zero counts to some peers, and a self-send.
TEST(MpiCollectives, AllToAllVRoutesUnevenAndZeroCounts) {
  const int W = world().size(), R = world().rank();
  auto count = [](int src, int dst) { return size_t((src * 7 + dst * 3) % 5); };  // includes 0
  const size_t w = static_cast<size_t>(W);
  std::vector<size_t> sb(w), so(w), rb(w), ro(w);
  size_t s_total = 0, r_total = 0;
  for (int p = 0; p < W; ++p) {
    sb[size_t(p)] = count(R, p) * sizeof(float);
    so[size_t(p)] = s_total;
    s_total += sb[size_t(p)];
    rb[size_t(p)] = count(p, R) * sizeof(float);
    ro[size_t(p)] = r_total;
    r_total += rb[size_t(p)];
  }
  std::vector<float> send(s_total / sizeof(float) + 1), recv(r_total / sizeof(float) + 1, -1.0f);
  for (int p = 0; p < W; ++p)
    for (size_t i = 0; i < count(R, p); ++i)
      send[so[size_t(p)] / sizeof(float) + i] = payload(R, p, i);
  world().all_to_all_v(send.data(), sb.data(), so.data(), recv.data(), rb.data(), ro.data());
  for (int s = 0; s < W; ++s)
    for (size_t i = 0; i < count(s, R); ++i)
      ASSERT_EQ(recv[ro[size_t(s)] / sizeof(float) + i], payload(s, R, i))
          << "from rank " << s << " index " << i;
}

TEST(MpiCollectives, BroadcastFromEveryRoot) {
  const int W = world().size(), R = world().rank();
  for (int root = 0; root < W; ++root) {
    std::vector<float> buf(17, -1.0f);
    if (R == root)
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = payload(root, 0, i);
    world().broadcast(buf.data(), buf.size() * sizeof(float), root);
    for (size_t i = 0; i < buf.size(); ++i)
      ASSERT_EQ(buf[i], payload(root, 0, i)) << "root " << root;
  }
  world().barrier();
}

// Groups of consecutive ranks (as DP groups of tp ranks are): each group's collectives see its
// members only, ranked by key, and the world's still work after the split.
TEST(MpiCollectives, SplitIntoGroupsOfConsecutiveRanks) {
  const int W = world().size(), R = world().rank();
  for (int per = 1; per <= W; per *= 2) {
    auto group = world().split(R / per, R % per);
    ASSERT_EQ(group->size(), per);
    ASSERT_EQ(group->rank(), R % per);
    float sum = float(R);
    group->all_reduce_sum(&sum, 1);
    const int first = R / per * per;  // the group's ranks are first .. first + per - 1
    EXPECT_EQ(sum, float(per * first + per * (per - 1) / 2)) << "group of " << per;
    std::vector<int> ranks(size_t(per), -1);
    group->all_gather(&R, ranks.data(), sizeof(int));
    for (int i = 0; i < per; ++i) EXPECT_EQ(ranks[size_t(i)], first + i) << "group of " << per;
    int from_root = R;
    group->broadcast(&from_root, sizeof(int), 0);
    EXPECT_EQ(from_root, first);
    // Reversed keys reverse the ranks within the group.
    auto reversed = world().split(R / per, per - 1 - R % per);
    EXPECT_EQ(reversed->rank(), per - 1 - R % per);
  }
  float all = 1.0f;
  world().all_reduce_sum(&all, 1);
  EXPECT_EQ(all, float(W));
}

}  // namespace
}  // namespace qwen3moe
