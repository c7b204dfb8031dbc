// The serving engine with DP groups (world = dp x tp): rank 0 places each request on a group,
// every group runs its own batch in the same steps, and every request's tokens equal the same
// request alone on one rank; cancellation, the groups' KV blocks and their statistics are kept
// per group. Runs every split the world allows (np 2: dp 2; np 4: dp 2 x tp 2, dp 4 x tp 1).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/engine/generate.h"
#include "model_fixture.h"
#include "mpi_world.h"

namespace qwen3moe {
namespace {

using testing::world;

using testing::dp_sizes;

struct Outcome {
  std::vector<int32_t> ids;
  std::string finish;
};

GenerationRequest request(const std::vector<int32_t>& prompt, int r) {
  GenerationRequest req;
  req.prompt = prompt;
  req.max_new_tokens = 6 + r % 5;
  req.ignore_eos = true;
  if (r % 2 == 0) {
    req.sampling.temperature = 0;
  } else {  // seeded sampling: the same draws on any placement
    req.sampling.temperature = 0.8f;
    req.sampling.top_k = 20;
    req.sampling.seed = uint64_t(100 + r);
  }
  return req;
}

// Eight requests over dp groups of at most two running sequences each (so the queue waits for
// room and every group gets work), with serve's graph settings or without.
void run_dp_case(int dp, bool serve_graph_settings) {
  const std::string dir = testing::fixture("hf-tiny/moe_a");
  testing::LoadedModel split(dir, &world(), 1, world().size() / dp);
  EngineOptions o;
  o.max_batch = 2;
  o.prefill_budget = 5;
  if (serve_graph_settings) {
    o.graph_padding = true;
    split.model.set_graphs(true);
    split.model.set_a2a_capacity((o.max_batch + split.topo.tp() - 1) / split.topo.tp());
  }
  Engine e(split.model, split.cache, world(), nullptr, o);
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 2, 3}, {7, 8, 9, 10, 11, 12, 13},           {42}, {5, 6}, {100, 200, 300, 400}, {9},
      {3, 3, 3}, {11, 12, 13, 14, 15, 16, 17, 18, 19}};
  if (world().rank() != 0) {
    e.follow();
    return;
  }
  std::map<int, Outcome> got;
  for (int r = 0; r < int(prompts.size()); ++r)
    e.submit(request(prompts[size_t(r)], r), [&, r](const GenerationEvent& ev) {
      got[r].ids.insert(got[r].ids.end(), ev.token_ids.begin(), ev.token_ids.end());
      if (!ev.finish_reason.empty()) got[r].finish = ev.finish_reason;
    });
  // The first step places the first requests: one per group before any group gets a second
  // (most free blocks first), and every group at its batch limit.
  e.step();
  EngineStats first = e.stats();
  ASSERT_EQ(first.groups.size(), size_t(dp));
  for (int g = 0; g < dp; ++g)
    EXPECT_EQ(first.groups[size_t(g)].running, std::min<int>(2, int(prompts.size()) / dp))
        << "group " << g << " of " << dp;
  auto all_finished = [&] {
    size_t n = 0;
    for (const auto& [r, out] : got) n += !out.finish.empty();
    return n == prompts.size();
  };
  for (int i = 0; i < 2000 && !all_finished(); ++i) e.step();
  const EngineStats st = e.stats();
  e.shutdown();
  e.serve();  // idle and stopping: sends the shutdown plan to the followers
  // The padded decode steps took the fixed-capacity exchange (only with serve's settings).
  EXPECT_EQ(split.model.fixed_dispatches() > 0, serve_graph_settings);
  testing::LoadedModel single(dir, nullptr, 1);
  for (int r = 0; r < int(prompts.size()); ++r) {
    const GenerationRequest req = request(prompts[size_t(r)], r);
    GenerationOptions g;
    g.max_new_tokens = req.max_new_tokens;
    g.sampling = req.sampling;
    g.ignore_eos = true;
    EXPECT_EQ(got[r].finish, "length") << "request " << r;
    EXPECT_EQ(got[r].ids,
              generate(single.model, *single.comm, single.cache, prompts[size_t(r)], g).output_ids)
        << "request " << r << " dp " << dp;
  }
  int64_t finished = 0;
  for (int g = 0; g < dp; ++g) {
    const DpGroupStats& gs = st.groups[size_t(g)];
    EXPECT_GT(gs.requests_finished, 0) << "group " << g << " got no request";
    EXPECT_EQ(gs.running, 0);
    EXPECT_EQ(gs.free_blocks, gs.total_blocks) << "group " << g << " kept blocks";
    finished += gs.requests_finished;
  }
  EXPECT_EQ(finished, int64_t(prompts.size()));
  EXPECT_EQ(st.total_blocks, split.cache.num_blocks() * dp);
}

TEST(MpiEngineDp, EveryGroupServesAndTokensEqualOneRank) {
  for (int dp : dp_sizes()) run_dp_case(dp, false);
}

TEST(MpiEngineDp, GraphPaddingAndFixedCapacityPerGroup) {
  for (int dp : dp_sizes()) run_dp_case(dp, true);
}

// dp requests on an idle engine: one per group (the most free blocks first), not two in group 0.
TEST(MpiEngineDp, OneRequestPerGroupBeforeAnySecond) {
  for (int dp : dp_sizes()) {
    testing::LoadedModel split(testing::fixture("hf-tiny/moe_a"), &world(), 1, world().size() / dp);
    EngineOptions o;
    o.max_batch = 4;
    Engine e(split.model, split.cache, world(), nullptr, o);
    if (world().rank() != 0) {
      e.follow();
      continue;
    }
    int finished = 0;
    for (int r = 0; r < dp; ++r) {
      GenerationRequest req;
      req.prompt = {int32_t(1 + r), 2, 3};
      req.max_new_tokens = 4;
      req.sampling.temperature = 0;
      e.submit(std::move(req),
               [&](const GenerationEvent& ev) { finished += !ev.finish_reason.empty(); });
    }
    e.step();
    const EngineStats st = e.stats();
    ASSERT_EQ(st.groups.size(), size_t(dp));
    for (int g = 0; g < dp; ++g) EXPECT_EQ(st.groups[size_t(g)].running, 1) << "group " << g;
    for (int i = 0; i < 100 && finished < dp; ++i) e.step();
    EXPECT_EQ(finished, dp);
    e.shutdown();
    e.serve();
  }
}

// Cancelling a request of another group than rank 0's ends it there and frees that group's
// blocks; the rest of its group still finishes.
TEST(MpiEngineDp, CancelInAnotherGroupFreesItsBlocks) {
  for (int dp : dp_sizes()) {
    testing::LoadedModel split(testing::fixture("hf-tiny/moe_a"), &world(), 1, world().size() / dp);
    EngineOptions o;
    o.max_batch = 2;
    Engine e(split.model, split.cache, world(), nullptr, o);
    if (world().rank() != 0) {
      e.follow();
      continue;
    }
    std::map<int, std::string> finish;
    std::vector<uint64_t> handles;
    for (int r = 0; r < 2 * dp; ++r) {
      GenerationRequest req;
      req.prompt = {int32_t(1 + r), 2, 3};
      req.max_new_tokens = 40;
      req.ignore_eos = true;
      req.sampling.temperature = 0;
      handles.push_back(e.submit(std::move(req), [&, r](const GenerationEvent& ev) {
        if (!ev.finish_reason.empty()) finish[r] = ev.finish_reason;
      }));
    }
    for (int i = 0; i < 3; ++i) e.step();
    // Request 1 went to group 1 (the first request filled group 0's free-block lead).
    e.cancel(handles[1]);
    e.step();
    EXPECT_EQ(finish[1], "cancelled");
    for (int i = 0; i < 500 && finish.size() < handles.size(); ++i) e.step();
    const EngineStats st = e.stats();
    for (int r = 0; r < 2 * dp; ++r) EXPECT_EQ(finish[r], r == 1 ? "cancelled" : "length");
    EXPECT_EQ(st.groups[1].requests_finished, 2);
    EXPECT_EQ(st.groups[1].free_blocks, st.groups[1].total_blocks);
    e.shutdown();
    e.serve();
  }
}

}  // namespace
}  // namespace qwen3moe
