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

Communicator& world() {
  return testing::world();
}

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

}  // namespace
}  // namespace qwen3moe
