// The serving engine across ranks: rank 0 schedules and broadcasts step plans, the others
// follow; batched outputs equal each request run alone on one rank.
#include <gtest/gtest.h>

#include <map>

#include "core/engine/engine.h"
#include "core/engine/generate.h"
#include "model_fixture.h"
#include "mpi_world.h"

namespace qwen3moe {
namespace {

using testing::world;

// serve's settings on a graph backend (graph padding, graphs, the fixed a2a capacity derived
// from the batch) or the eager counted path.
void run_engine_case(bool serve_graph_settings) {
  const std::string dir = testing::fixture("hf-tiny/moe_a");
  testing::LoadedModel split(dir, &world(), 1);
  EngineOptions o;
  o.max_batch = 3;
  o.prefill_budget = 5;
  if (serve_graph_settings) {
    o.graph_padding = true;
    split.model.set_graphs(true);
    split.model.set_a2a_capacity((o.max_batch + world().size() - 1) / world().size());
  }
  Engine e(split.model, split.cache, world(), nullptr, o);
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {7, 8, 9, 10, 11, 12, 13}, {42}, {5, 6}};
  if (world().rank() != 0) {
    e.follow();
    return;
  }
  std::map<int, std::vector<int32_t>> ids;
  std::map<int, std::string> finish;
  for (int r = 0; r < 4; ++r) {
    GenerationRequest req;
    req.prompt = prompts[size_t(r)];
    req.max_new_tokens = 10;
    req.sampling.temperature = 0;
    req.ignore_eos = true;
    e.submit(std::move(req), [&, r](const GenerationEvent& ev) {
      ids[r].insert(ids[r].end(), ev.token_ids.begin(), ev.token_ids.end());
      if (!ev.finish_reason.empty()) finish[r] = ev.finish_reason;
    });
  }
  for (int i = 0; i < 1000 && finish.size() < 4; ++i) e.step();
  e.shutdown();
  e.serve();  // idle and stopping: sends the shutdown plan to the followers
  testing::LoadedModel single(dir, nullptr, 1);
  for (int r = 0; r < 4; ++r) {
    GenerationOptions g;
    g.max_new_tokens = 10;
    g.sampling.temperature = 0;
    g.ignore_eos = true;
    EXPECT_EQ(finish[r], "length");
    EXPECT_EQ(ids[r],
              generate(single.model, *single.comm, single.cache, prompts[size_t(r)], g).output_ids)
        << "request " << r;
  }
  // The padded decode steps took the fixed-capacity exchange (only with serve's settings).
  if (world().size() > 1) {
    EXPECT_EQ(split.model.fixed_dispatches() > 0, serve_graph_settings);
  }
}

TEST(MpiEngine, RanksFollowRankZerosPlans) {
  run_engine_case(false);
}

// Padded decode steps within the fixed capacity: every rank runs the padded plan, and the
// tokens are still each request's alone on one rank.
TEST(MpiEngine, GraphPaddingAndFixedCapacityKeepTheTokens) {
  run_engine_case(true);
}

// Prefix caching across ranks: rank 0 decides which blocks a prompt reuses and the plans name
// them, so every rank reads the same cached KV; a second wave sharing a 32-token prefix reuses
// it and keeps each request's tokens as computed alone on one rank.
TEST(MpiEngine, PrefixCacheReusesBlocksOnEveryRank) {
  const std::string dir = testing::fixture("hf-tiny/moe_a");
  testing::LoadedModel split(dir, &world(), 1);
  EngineOptions o;
  o.max_batch = 2;
  o.prefill_budget = 16;
  o.prefix_cache = true;
  Engine e(split.model, split.cache, world(), nullptr, o);
  if (world().rank() != 0) {
    e.follow();
    return;
  }
  std::vector<int32_t> shared;
  for (int i = 0; i < 32; ++i) shared.push_back(int32_t((i * 37 + 11) % 512));
  std::vector<std::vector<int32_t>> prompts;
  for (int r = 0; r < 3; ++r) {
    std::vector<int32_t> p = shared;
    for (int i = 0; i < 3 + r; ++i) p.push_back(int32_t((r * 101 + i * 13 + 2) % 512));
    prompts.push_back(p);
  }
  std::map<int, std::vector<int32_t>> ids;
  auto submit_and_run = [&](int r) {
    GenerationRequest req;
    req.prompt = prompts[size_t(r)];
    req.max_new_tokens = 6;
    req.sampling.temperature = 0;
    req.ignore_eos = true;
    bool done = false;
    e.submit(std::move(req), [&, r](const GenerationEvent& ev) {
      ids[r].insert(ids[r].end(), ev.token_ids.begin(), ev.token_ids.end());
      done |= !ev.finish_reason.empty();
    });
    for (int i = 0; i < 1000 && !done; ++i) e.step();
  };
  for (int r = 0; r < 3; ++r) submit_and_run(r);
  EXPECT_EQ(e.stats().prefix_hit_tokens, 2 * 32);  // the 2nd and 3rd reuse the shared blocks
  e.shutdown();
  e.serve();
  testing::LoadedModel single(dir, nullptr, 1);
  for (int r = 0; r < 3; ++r) {
    GenerationOptions g;
    g.max_new_tokens = 6;
    g.sampling.temperature = 0;
    g.ignore_eos = true;
    EXPECT_EQ(ids[r],
              generate(single.model, *single.comm, single.cache, prompts[size_t(r)], g).output_ids)
        << "request " << r;
  }
}

}  // namespace
}  // namespace qwen3moe
