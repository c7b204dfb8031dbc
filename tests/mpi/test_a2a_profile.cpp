// The all-to-all profiler on a real split run: a greedy generate of the tiny MoE fixture under
// mpirun, profiled, must conserve tokens (every token-expert pair counted once), report bytes
// equal to what each rank handed to all_to_all_v, list every layer (dense ones empty), and
// write a trace with every rank's events and a report page.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/checkpoint/random_checkpoint.h"
#include "core/engine/generate.h"
#include "model_fixture.h"
#include "mpi_world.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::fixture;
using testing::LoadedModel;

using testing::world;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A folder every rank agrees on (rank 0's pid; all ranks share this machine's /tmp).
fs::path shared_temp(const std::string& what) {
  int64_t pid = ::getpid();
  world().broadcast(&pid, sizeof(pid), 0);
  return fs::temp_directory_path() / ("qwen3moe-" + what + "-" + std::to_string(pid));
}

struct ProfiledRun {
  json summary, trace;
  std::string html;
  std::vector<std::vector<uint64_t>> sent;  // [rank][layer] bytes the rank passed to all_to_all_v
  int64_t tokens = 0;                       // forwarded: prompt + new - 1
  int64_t steps = 0;
};

// tp < world: DP groups of tp ranks (the sequence runs in group 0, the others join empty).
ProfiledRun profiled_greedy(const std::string& model_dir, const std::string& tag, int tp = 0) {
  LoadedModel m(model_dir, &world(), 1, tp);
  const int W = world().size();
  A2aProfiler p(world().rank(), W, m.config.num_experts, m.model.moe_layers());
  p.set_tp(m.topo.tp());
  p.sync_clock(world());
  m.model.set_profiler(&p);
  const std::vector<int32_t> prompt = {3, 17, 42, 99, 5, 250, 11};
  GenerationOptions o;
  o.max_new_tokens = 6;
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  o.profiler = &p;
  const GenerationResult r = generate(m.model, world(), m.cache, prompt, o);
  m.model.set_profiler(nullptr);
  EXPECT_EQ(r.output_ids.size(), 6u);

  const size_t L = size_t(m.config.num_hidden_layers);
  std::vector<uint64_t> mine(L, 0);
  for (const A2aExchange& e : p.exchanges())
    for (uint64_t b : e.bytes_to) mine[size_t(e.layer)] += b;
  std::vector<uint64_t> all(L * size_t(W));
  world().all_gather(mine.data(), all.data(), L * sizeof(uint64_t));

  const fs::path dir = shared_temp("a2a-profile-" + tag);
  p.write(world(), dir.string(), 1);
  world().barrier();
  ProfiledRun out;
  if (world().rank() == 0) {
    out.summary = json::parse(slurp(dir / "a2a.json"));
    out.trace = json::parse(slurp(dir / "trace.json"));
    out.html = slurp(dir / "report.html");
    fs::remove_all(dir);
  }
  for (int k = 0; k < W; ++k)
    out.sent.emplace_back(all.begin() + k * int64_t(L), all.begin() + (k + 1) * int64_t(L));
  out.tokens = int64_t(prompt.size()) + int64_t(r.output_ids.size()) - 1;
  out.steps = int64_t(r.output_ids.size());  // the prefill and one per decoded token but the last
  return out;
}

void check_summary(const ProfiledRun& run, const ModelConfig& c, int W) {
  const json& s = run.summary;
  EXPECT_EQ(s["world_size"], W);
  ASSERT_EQ(s["layers"].size(), size_t(c.num_hidden_layers));
  EXPECT_EQ(s["totals"]["steps"], run.steps);
  const int64_t H = c.hidden_size, k = c.num_experts_per_tok;
  for (size_t l = 0; l < s["layers"].size(); ++l) {
    const json& layer = s["layers"][l];
    EXPECT_EQ(layer["layer"], l);
    EXPECT_EQ(layer["moe"].get<bool>(), c.is_moe_layer(int64_t(l))) << "layer " << l;
    const auto tokens = layer["tokens_per_expert"].get<std::vector<int64_t>>();
    ASSERT_EQ(tokens.size(), size_t(c.num_experts));
    int64_t pairs = 0;
    for (int64_t t : tokens) pairs += t;
    const auto matrix = layer["bytes_matrix"].get<std::vector<std::vector<uint64_t>>>();
    ASSERT_EQ(matrix.size(), size_t(W));
    uint64_t matrix_total = 0;
    for (int r = 0; r < W; ++r) {
      ASSERT_EQ(matrix[size_t(r)].size(), size_t(W));
      uint64_t row = 0;
      for (uint64_t b : matrix[size_t(r)]) row += b;
      EXPECT_EQ(row, run.sent[size_t(r)][l]) << "layer " << l << " rank " << r;
      matrix_total += row;
    }
    const auto dispatch = layer["dispatch_bytes"].get<uint64_t>();
    const auto combine = layer["combine_bytes"].get<uint64_t>();
    EXPECT_EQ(dispatch + combine, matrix_total) << "layer " << l;
    if (!c.is_moe_layer(int64_t(l))) {
      EXPECT_EQ(pairs, 0) << "dense layer " << l;
      EXPECT_EQ(matrix_total, 0u) << "dense layer " << l;
      EXPECT_EQ(layer["dispatch_us"].get<double>(), 0.0);
      continue;
    }
    EXPECT_EQ(pairs, run.tokens * k) << "layer " << l;
    // Dispatch rows carry hidden + k ids + k weights, combine rows hidden; one row per
    // (token, owning rank) both ways: between 1 and min(k, W) per token.
    const uint64_t dispatch_row = uint64_t(H + 2 * k) * 4, combine_row = uint64_t(H) * 4;
    ASSERT_EQ(dispatch % dispatch_row, 0u);
    ASSERT_EQ(combine % combine_row, 0u);
    const int64_t rows = int64_t(dispatch / dispatch_row);
    EXPECT_EQ(rows, int64_t(combine / combine_row)) << "layer " << l;
    EXPECT_GE(rows, run.tokens);
    EXPECT_LE(rows, run.tokens * std::min<int64_t>(k, W));
    EXPECT_GT(layer["dispatch_us"].get<double>(), 0.0);
    EXPECT_EQ(layer["dispatch_wait_us"].size(), size_t(W));
    EXPECT_GE(layer["rank_imbalance"].get<double>(), 1.0);
  }
}

void check_trace(const ProfiledRun& run, int W) {
  ASSERT_TRUE(run.trace.contains("traceEvents"));
  std::vector<std::set<std::string>> names(static_cast<size_t>(W));
  for (const json& e : run.trace["traceEvents"]) {
    const int pid = e["pid"].get<int>();
    ASSERT_GE(pid, 0);
    ASSERT_LT(pid, W);
    if (e["ph"] == "X") names[size_t(pid)].insert(e["name"].get<std::string>());
  }
  for (int r = 0; r < W; ++r)
    for (const char* want : {"attention", "router", "experts", "dispatch wait", "dispatch transfer",
                             "combine wait", "combine transfer"})
      EXPECT_TRUE(names[size_t(r)].count(want)) << "rank " << r << " has no " << want;
}

TEST(A2aProfile, GreedyRunOfMoeFixture) {
  const std::string dir = fixture("hf-tiny/moe_a");
  const ProfiledRun run = profiled_greedy(dir, "moe");
  if (world().rank() != 0) return;
  check_summary(run, ModelConfig::load(dir), world().size());
  check_trace(run, world().size());
  EXPECT_NE(run.html.find("<svg"), std::string::npos);
}

// With DP groups the exchange still spans the world (the same byte checks hold: only group 0's
// tokens travel), and every output names each rank's group.
TEST(A2aProfile, DpGroupsLabelTheRanks) {
  const int W = world().size();
  if (W < 2) GTEST_SKIP();
  const std::string dir = fixture("hf-tiny/moe_a");
  const ProfiledRun run = profiled_greedy(dir, "dp", W / 2);
  if (world().rank() != 0) return;
  check_summary(run, ModelConfig::load(dir), W);
  EXPECT_EQ(run.summary["dp"], 2);
  EXPECT_EQ(run.summary["tp"], W / 2);
  EXPECT_NE(run.html.find("(dp 2 × tp " + std::to_string(W / 2) + ")"), std::string::npos);
  const std::string last = "rank " + std::to_string(W - 1) + " · DP 1";
  EXPECT_NE(run.html.find(last), std::string::npos) << "the report names no " << last;
  std::set<std::string> names;
  for (const json& e : run.trace["traceEvents"])
    if (e["name"] == "process_name") names.insert(e["args"]["name"].get<std::string>());
  EXPECT_TRUE(names.count("rank 0 · DP 0")) << "trace process names";
  EXPECT_TRUE(names.count(last)) << "trace process names";
}

TEST(A2aProfile, DenseLayerBetweenMoeLayersIsListedEmpty) {
  // moe_a's shape with layer 1 dense, random weights written once by rank 0.
  const fs::path model = shared_temp("a2a-model-dense-mid");
  if (world().rank() == 0) {
    json config = json::parse(slurp(fixture("hf-tiny/moe_a/config.json")));
    config["mlp_only_layers"] = {1};
    fs::create_directories(model / "ckpt");
    std::ofstream(model / "in-config.json") << config.dump(2);
    RandomCheckpointOptions ro;
    ro.seed = 7;
    write_random_checkpoint((model / "in-config.json").string(), (model / "ckpt").string(), ro);
  }
  world().barrier();
  const std::string dir = (model / "ckpt").string();
  const ProfiledRun run = profiled_greedy(dir, "dense-mid");
  world().barrier();
  if (world().rank() != 0) return;
  const ModelConfig c = ModelConfig::load(dir);
  ASSERT_FALSE(c.is_moe_layer(1));
  check_summary(run, c, world().size());
  fs::remove_all(model);
}

}  // namespace
}  // namespace qwen3moe
