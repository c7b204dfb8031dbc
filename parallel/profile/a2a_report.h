// The writing side of the all-to-all profiler (parallel/profile/a2a_profiler.h): every rank's
// records gathered on rank 0, and the three outputs made from them. Split from the recorder so the
// summary, trace and page can be tested without a job.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "parallel/comm/communicator.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe {

// All ranks' records. Exchanges are collective, so the n-th exchange of every rank is the same
// (step, layer, phase) and rows of `exchanges` line up by index.
struct A2aRecords {
  int world = 1;
  int tp = 1;  // DP groups of tp consecutive ranks (tp == world: one group)
  int64_t num_experts = 0;
  std::vector<bool> moe_layer;
  std::vector<std::vector<A2aExchange>> exchanges;  // [rank][n]
  std::vector<std::vector<A2aSpan>> spans;          // [rank][n]
  std::vector<std::vector<int64_t>> expert_tokens;  // [layer][expert], summed over ranks
  // What each rank folded out of its detail: [rank][layer * 2 + (0 dispatch, 1 combine)], and
  // the steps folded (the exchanges above are the later steps).
  std::vector<std::vector<A2aFolded>> folded;
  int64_t folded_steps = 0;
};

// The records of one process (tests, and the world-1 path).
A2aRecords local_records(const A2aProfiler& p);

// Collective: every rank sends its records to rank 0; the result is complete on rank 0 only.
A2aRecords gather_records(const A2aProfiler& p, Communicator& comm);

// "rank 3", or with DP groups (tp < world) "rank 3 · DP 1": how the outputs name a rank.
inline std::string a2a_rank_label(int rank, int tp, int world) {
  std::string s = "rank " + std::to_string(rank);
  if (tp > 0 && tp < world) s += " · DP " + std::to_string(rank / tp);
  return s;
}

// DIR/a2a.json: per-layer totals, per-step detail, imbalance, bandwidth, wait vs transfer and
// the placement what-if (whatif_redundant hottest experts replicated).
nlohmann::json a2a_summary(const A2aRecords& r, int whatif_redundant);

// DIR/trace.json: Chrome/Perfetto trace events, one track per rank on rank 0's clock.
nlohmann::json a2a_trace(const A2aRecords& r);

// DIR/report.html from the summary: one self-contained page of inline SVG plots.
std::string a2a_report_html(const nlohmann::json& summary);

}  // namespace qwen3moe
