// The all-to-all profiler's outputs on one rank: the placement what-if on handmade expert
// histograms with answers worked out by hand, and a2a.json / trace.json / report.html from
// hand-recorded exchanges.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kernels/backend.h"
#include "kernels/common/check.h"
#include "parallel/profile/a2a_profiler.h"
#include "parallel/profile/a2a_report.h"
#include "parallel/profile/a2a_whatif.h"

namespace qwen3moe {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PlacementWhatIf, BalancingFindsThePerfectSplit) {
  // Contiguous: rank 0 {8, 6} = 14, rank 1 {2, 0} = 2, mean 8 -> 1.75. Balanced: {8, 0}, {6, 2}.
  const PlacementWhatIf w = placement_whatif({8, 6, 2, 0}, 2, 0);
  EXPECT_DOUBLE_EQ(w.current.max_over_mean, 1.75);
  EXPECT_EQ(w.current.rank_load, (std::vector<double>{14, 2}));
  EXPECT_DOUBLE_EQ(w.balanced.max_over_mean, 1.0);
  EXPECT_EQ(w.balanced.rank_load, (std::vector<double>{8, 8}));
  for (const auto& experts : w.balanced.experts) EXPECT_EQ(experts.size(), 2u);
}

TEST(PlacementWhatIf, OneHotExpertNeedsACopy) {
  // Balanced can do no better than {12, x}: 13 of mean 8. Splitting 12 into 6 + 6 on two ranks
  // gives {6, 1, 1} and {6, 2}: perfect.
  const PlacementWhatIf w = placement_whatif({12, 2, 1, 1}, 2, 1);
  EXPECT_DOUBLE_EQ(w.current.max_over_mean, 1.75);
  EXPECT_DOUBLE_EQ(w.balanced.max_over_mean, 13.0 / 8.0);
  EXPECT_DOUBLE_EQ(w.redundant.max_over_mean, 1.0);
  EXPECT_EQ(w.redundant_copies, 1);
  // The two copies of expert 0 are on different ranks.
  int ranks_with_0 = 0;
  for (const auto& experts : w.redundant.experts)
    ranks_with_0 += int(std::count(experts.begin(), experts.end(), 0));
  EXPECT_EQ(ranks_with_0, 2);
  for (const auto& experts : w.redundant.experts)
    EXPECT_LE(std::count(experts.begin(), experts.end(), 0), 1);
}

TEST(PlacementWhatIf, CopiesKeptApartEvenWhenThatCostsBalance) {
  // {8, 6, 2, 0} with expert 0 split into 4 + 4: the only sums of 8 pair the two copies, which
  // must not share a rank, so the best is {6, 4} vs {4, 2, 0}: 10 of mean 8.
  const PlacementWhatIf w = placement_whatif({8, 6, 2, 0}, 2, 1);
  EXPECT_DOUBLE_EQ(w.redundant.max_over_mean, 1.25);
}

TEST(PlacementWhatIf, EvenAndEmptyLoadsAreBalanced) {
  const PlacementWhatIf even = placement_whatif({5, 5, 5, 5, 5, 5, 5, 5}, 4, 2);
  EXPECT_DOUBLE_EQ(even.current.max_over_mean, 1.0);
  EXPECT_DOUBLE_EQ(even.balanced.max_over_mean, 1.0);
  const PlacementWhatIf none = placement_whatif({0, 0, 0, 0}, 2, 0);
  EXPECT_DOUBLE_EQ(none.current.max_over_mean, 1.0);
  EXPECT_DOUBLE_EQ(none.balanced.max_over_mean, 1.0);
}

TEST(PlacementWhatIf, BadArgumentsNameTheNumbers) {
  EXPECT_THROW(placement_whatif({1, 2, 3}, 2, 0), Error);
  try {
    placement_whatif({1, 2, 3, 4}, 2, 5);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--whatif-redundant 5 must be in [0, 4]"),
              std::string::npos)
        << e.what();
  }
}

// With a device clock, marks are resolved at end_step (one wait for the device per step,
// not two per span): nothing is in the detail before, and after it the spans and the
// exchange hold the time between their marks, in order. The CPU backend's marks are host time.
TEST(A2aProfiler, DeviceMarksResolveAtEndStep) {
  const std::unique_ptr<Backend> backend = make_cpu_backend(1);
  auto comm = make_local_communicator();
  A2aProfiler p(0, 1, 4, {true});
  p.set_device_clock(backend.get());
  auto sleep_ms = [](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
  {
    ProfileSpan span(&p, "attention", 0);
    sleep_ms(3);
  }
  const A2aMark t0 = p.mark();
  sleep_ms(2);
  const A2aMark t1 = p.mark();
  sleep_ms(2);
  p.record_exchange(0, "dispatch", {64}, t0, t1, p.mark());
  { ProfileSpan off(nullptr, "experts", 0); }  // no profiler: nothing recorded
  EXPECT_TRUE(p.spans().empty());
  EXPECT_TRUE(p.exchanges().empty());
  p.end_step(*comm);
  ASSERT_EQ(p.spans().size(), 1u);
  ASSERT_EQ(p.exchanges().size(), 1u);
  const A2aSpan& s = p.spans()[0];
  const A2aExchange& e = p.exchanges()[0];
  EXPECT_EQ(s.name, "attention");
  EXPECT_GE(s.dur_us, 3000.0);
  EXPECT_GE(e.start_us, s.start_us + s.dur_us);
  EXPECT_GE(e.wait_us, 2000.0);
  EXPECT_GE(e.transfer_us, 2000.0);
  EXPECT_EQ(e.bytes_to, std::vector<uint64_t>{64});
}

// Fills p with `steps` steps of two MoE layers' exchanges and spans, ending each with end_step.
void record_steps(A2aProfiler& p, Communicator& comm, int steps) {
  for (int st = 0; st < steps; ++st) {
    p.set_step(st);
    for (int64_t l = 0; l < 2; ++l) {
      const double t = 1000.0 * st + 100.0 * double(l);
      p.record_span("attention", l, t, 10);
      p.record_exchange(l, "dispatch", {size_t(10 * (st + 1) + l)}, t + 10, 1 + st % 3, 2);
      p.record_expert_tokens(l, st % 4, 1 + l);
      p.record_exchange(l, "combine", {size_t(5 * (st + 1))}, t + 30, 0, 1 + st % 2);
    }
    p.end_step(comm);
  }
}

// --profile-a2a-steps N: the detail keeps the last N to 2N steps, the older ones fold into the
// totals, and every per-layer and run total equals the profile that kept everything.
TEST(A2aProfiler, DetailRingFoldsOldStepsIntoTheSameTotals) {
  auto comm = make_local_communicator();
  A2aProfiler all(0, 1, 4, {true, true}), ring(0, 1, 4, {true, true});
  ring.set_max_steps(2);
  record_steps(all, *comm, 7);
  record_steps(ring, *comm, 7);
  // Folds after steps 3 and 5 (4 in detail each time), leaving steps 4, 5 and 6.
  EXPECT_EQ(ring.folded_steps(), 4);
  EXPECT_EQ(ring.exchanges().size(), 3u * 4u);
  EXPECT_EQ(ring.spans().size(), 3u * 2u);
  EXPECT_EQ(ring.exchanges().front().step, 4);
  const nlohmann::json a = a2a_summary(local_records(all), 1);
  nlohmann::json b = a2a_summary(local_records(ring), 1);
  EXPECT_EQ(b["totals"]["steps"], 7);
  EXPECT_EQ(b["totals"]["steps_in_detail"], 3);
  EXPECT_EQ(b["totals"]["exchanges"], 28);
  EXPECT_EQ(b["steps"].size(), 3u * 4u);
  b["totals"]["steps_in_detail"] = a["totals"]["steps_in_detail"];
  EXPECT_EQ(b["totals"], a["totals"]);
  EXPECT_EQ(b["layers"], a["layers"]);
  EXPECT_EQ(b["whatif"], a["whatif"]);
  EXPECT_THROW(ring.set_max_steps(-1), Error);
}

TEST(A2aReport, SingleRankFiles) {
  // Layers 0 and 2 MoE, layer 1 dense; 4 experts; two steps.
  A2aProfiler p(0, 1, 4, {true, false, true});
  p.set_step(0);
  p.record_span("attention", 0, 1, 4);
  p.record_exchange(0, "dispatch", {100}, 10, 2, 3);
  p.record_expert_tokens(0, 1, 3);
  p.record_expert_tokens(0, 2, 1);
  p.record_span("experts", 0, 15, 5);
  p.record_exchange(0, "combine", {60}, 20, 1, 1);
  p.record_exchange(2, "dispatch", {40}, 30, 0, 4);
  p.record_expert_tokens(2, 0, 2);
  p.record_exchange(2, "combine", {24}, 40, 0, 2);
  p.set_step(1);
  p.record_exchange(0, "dispatch", {50}, 50, 1, 1);
  p.record_expert_tokens(0, 1, 2);
  p.record_exchange(0, "combine", {30}, 60, 1, 1);
  p.record_exchange(2, "dispatch", {20}, 70, 0, 2);
  p.record_expert_tokens(2, 3, 2);
  p.record_exchange(2, "combine", {12}, 80, 0, 2);

  const auto dir =
      std::filesystem::temp_directory_path() / ("a2a-report-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto comm = make_local_communicator();
  p.write(*comm, dir.string(), 1);

  const auto j = nlohmann::json::parse(slurp(dir / "a2a.json"));
  EXPECT_EQ(j["world_size"], 1);
  ASSERT_EQ(j["layers"].size(), 3u);
  const auto& l0 = j["layers"][0];
  EXPECT_EQ(l0["layer"], 0);
  EXPECT_TRUE(l0["moe"].get<bool>());
  EXPECT_EQ(l0["dispatch_bytes"], 150);
  EXPECT_EQ(l0["combine_bytes"], 90);
  EXPECT_DOUBLE_EQ(l0["dispatch_us"].get<double>(), 5 + 2);
  EXPECT_DOUBLE_EQ(l0["combine_us"].get<double>(), 2 + 2);
  EXPECT_EQ(l0["tokens_per_expert"], (std::vector<int64_t>{0, 5, 1, 0}));
  EXPECT_EQ(l0["bytes_matrix"], (std::vector<std::vector<uint64_t>>{{240}}));
  EXPECT_DOUBLE_EQ(l0["expert_imbalance"].get<double>(), 5.0 / 1.5);
  EXPECT_DOUBLE_EQ(l0["dispatch_wait_us"][0].get<double>(), 3);
  EXPECT_DOUBLE_EQ(l0["dispatch_transfer_us"][0].get<double>(), 4);
  // 240 bytes per rank in 11 µs.
  EXPECT_NEAR(l0["gbps"].get<double>(), 240.0 / 11e-6 / 1e9, 1e-9);
  const auto& l1 = j["layers"][1];
  EXPECT_FALSE(l1["moe"].get<bool>());
  EXPECT_EQ(l1["dispatch_bytes"], 0);
  EXPECT_EQ(l1["combine_bytes"], 0);
  EXPECT_EQ(l1["tokens_per_expert"], (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(j["layers"][2]["tokens_per_expert"], (std::vector<int64_t>{2, 0, 0, 2}));
  ASSERT_EQ(j["steps"].size(), 8u);
  EXPECT_EQ(j["steps"][4]["step"], 1);
  EXPECT_EQ(j["steps"][4]["phase"], "dispatch");
  EXPECT_EQ(j["steps"][4]["bytes"], 50);
  EXPECT_EQ(j["totals"]["bytes"], 336);
  EXPECT_EQ(j["totals"]["steps"], 2);
  EXPECT_EQ(j["totals"]["hottest_expert"]["layer"], 0);
  EXPECT_EQ(j["totals"]["hottest_expert"]["expert"], 1);
  EXPECT_EQ(j["whatif"]["redundant_copies"], 1);
  // One rank: every placement is the same single rank.
  EXPECT_DOUBLE_EQ(j["whatif"]["current"].get<double>(), 1.0);

  const auto trace = nlohmann::json::parse(slurp(dir / "trace.json"));
  int wait = 0, transfer = 0, spans = 0;
  for (const auto& e : trace["traceEvents"]) {
    EXPECT_EQ(e["pid"], 0);
    if (e["ph"] != "X") continue;
    EXPECT_GE(e["ts"].get<double>(), 0);
    const std::string name = e["name"];
    wait += name.ends_with(" wait");
    transfer += name.ends_with(" transfer");
    spans += name == "attention" || name == "experts";
  }
  EXPECT_EQ(wait, 8);
  EXPECT_EQ(transfer, 8);
  EXPECT_EQ(spans, 2);

  const std::string html = slurp(dir / "report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);  // nothing fetched from a network
  EXPECT_EQ(html.find("https://"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// Spans that touch on the clock touch in the trace: each boundary is rounded once, so a span's
// end is exactly the next one's start however the fractional microseconds fall.
TEST(A2aTrace, AdjacentSpansNeverOverlapByRounding) {
  A2aRecords r;
  r.world = 1;
  r.moe_layer = {true};
  r.exchanges.resize(1);
  r.spans.resize(1);
  double t = 100.37;
  std::vector<double> bounds{t};
  for (int i = 0; i < 50; ++i) {
    const double len = 0.3 + 0.417 * (i % 7);  // fractional lengths, some under 1 µs
    r.spans[0].push_back({0, 0, "experts", t, len});
    t += len;
    bounds.push_back(t);
    A2aExchange e;
    e.phase = "dispatch";
    e.bytes_to = {8};
    e.start_us = t;
    e.wait_us = 0.49 + 0.1 * (i % 3);
    e.transfer_us = 1.26;
    r.exchanges[0].push_back(e);
    t += e.wait_us + e.transfer_us;
    bounds.push_back(t);
  }
  const nlohmann::json trace = a2a_trace(r);
  std::vector<std::pair<int64_t, int64_t>> events;  // [ts, ts + dur)
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] != "X") continue;
    ASSERT_TRUE(e["ts"].is_number_integer() && e["dur"].is_number_integer()) << e.dump();
    events.emplace_back(e["ts"].get<int64_t>(), e["ts"].get<int64_t>() + e["dur"].get<int64_t>());
  }
  ASSERT_EQ(events.size(), 150u);
  std::sort(events.begin(), events.end());
  for (size_t i = 1; i < events.size(); ++i)
    EXPECT_LE(events[i - 1].second, events[i].first) << "event " << i << " overlaps the one before";
  // The wait and transfer of an exchange share their boundary exactly.
  int64_t touching = 0;
  for (size_t i = 1; i < events.size(); ++i) touching += events[i - 1].second == events[i].first;
  EXPECT_EQ(touching, int64_t(events.size()) - 1);  // here every span starts where one ends
}

}  // namespace
}  // namespace qwen3moe
