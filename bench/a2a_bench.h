// The all-to-all benchmark behind `qwen3moe a2a-bench` (README "a2a-bench"):
// - a sweep of a raw all_to_all_v with equal per-peer sizes, reported like nccl-tests
//   (size count type time algbw busbw #wrong, busbw = algbw·(n−1)/n);
// - the real ExpertDispatch dispatch + combine under a synthetic router (uniform or zipf over
//   expert ids), against a raw all_to_all_v of the same per-peer byte matrices, so the cost of
//   the MoE exchange beyond moving its bytes is one number.
// Every function here is collective: all ranks call it with the same options.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe::bench {

struct AlltoallSweepOptions {
  size_t min_bytes = 1024;              // total bytes each rank sends, smallest size
  size_t max_bytes = size_t(16) << 20;  // ... largest size
  double step_factor = 2;               // next size = size × step_factor
  int iters = 20;                       // timed iterations per size
  int warmup = 5;                       // untimed iterations per size before them
};

// Throws Error naming the bad option and its value (same outcome on every rank).
void validate(const AlltoallSweepOptions& o, int world);

// The sizes the sweep runs: each a multiple of world × sizeof(float), so every peer gets the
// same whole number of floats.
std::vector<size_t> sweep_sizes(const AlltoallSweepOptions& o, int world);

struct AlltoallRow {
  size_t bytes = 0;      // total bytes sent by each rank (world × per-peer block)
  size_t count = 0;      // floats sent by each rank
  double time_us = 0;    // mean over iters of the slowest rank's time of that iteration
  double algbw_gbs = 0;  // bytes / time
  double busbw_gbs = 0;  // algbw × (n−1)/n
  int64_t wrong = 0;     // payload values that arrived wrong, summed over ranks
};

std::vector<AlltoallRow> run_alltoall_sweep(Communicator& comm, const AlltoallSweepOptions& o);

// The float rank `src` sends at index i of its block for rank `dst`: an integer below 2^24
// (exact in float) that differs between sources, destinations and neighbouring indices.
float alltoall_payload(int src, int dst, size_t i);

struct Routing {
  bool zipf = false;
  double s = 0;  // zipf exponent: P(expert e) ∝ 1 / (e + 1)^s
};
// "uniform" or "zipf:S" with S > 0; throws Error otherwise.
Routing parse_routing(const std::string& text);

struct DispatchBenchOptions {
  int64_t tokens = 128;   // per rank
  int64_t hidden = 2048;  // Qwen3-30B-A3B
  int64_t experts = 128;
  int64_t top_k = 8;
  std::string routing = "uniform";
  std::string a2a_dtype = "f32";  // the rows' payload: f32 or bf16
  // > 0: the fixed-capacity exchange, blocks of this many rows to every peer (>= tokens)
  int64_t a2a_capacity = 0;
  uint64_t seed = 0;
  int iters = 20;
  int warmup = 5;
};

void validate(const DispatchBenchOptions& o, int world);

// This rank's synthetic router output: ids, weights [tokens, top_k]; k distinct experts per
// token drawn without replacement from the routing distribution, weights positive summing to
// one. Deterministic in (seed, rank).
void synthetic_routing(const DispatchBenchOptions& o, int rank, std::vector<int32_t>& ids,
                       std::vector<float>& weights);

struct DispatchBenchResult {
  int world = 1;
  int64_t pairs = 0;            // (token, destination rank) pairs this rank dispatched
  uint64_t dispatch_bytes = 0;  // this rank sent in one dispatch (self included)
  uint64_t combine_bytes = 0;   // this rank sent in one combine (self included)
  // [world × world] dispatch + combine bytes sent from row rank to column rank, one iteration.
  std::vector<uint64_t> bytes_matrix;
  double mean_dispatch_bytes = 0, mean_combine_bytes = 0;  // sent per rank, mean over ranks
  double mean_rank_bytes = 0;  // dispatch + combine bytes sent per rank, mean over ranks
  double max_rank_bytes = 0;   // ... and the busiest rank's
  // Mean over iters of the slowest rank's time of each phase of that iteration.
  double dispatch_us = 0, combine_us = 0, time_us = 0;  // time = dispatch + combine
  double raw_us = 0;  // the same two byte matrices through bare all_to_all_v calls
  // Each phase on an average rank (mean over ranks and iters), split as ExpertDispatch reports
  // it to the profiler: the counts exchange (waiting for the slowest peer), the data transfer,
  // and the rest: packing and unpacking (dispatch), summing (combine) on the rank itself.
  double dispatch_wait_us = 0, dispatch_transfer_us = 0, dispatch_local_us = 0;
  double combine_wait_us = 0, combine_transfer_us = 0, combine_local_us = 0;
  double algbw_gbs = 0, busbw_gbs = 0;          // mean_rank_bytes / time_us
  double raw_algbw_gbs = 0, raw_busbw_gbs = 0;  // mean_rank_bytes / raw_us
  double ratio = 0;                             // algbw / raw_algbw (goal ≥ 0.9)
  std::vector<int64_t> tokens_per_expert;       // token-expert pairs, all ranks
  double expert_imbalance = 0;                  // max / mean token-expert pairs per expert
  double rank_imbalance = 0;                    // max / mean token-expert pairs per owning rank
  int64_t wrong = 0;    // combined values that differ from the identity experts' sum
  int64_t checked = 0;  // combined values checked, all ranks
};

// backend: the memory the rows live in and the ops that pack and sum them; comm carries that
// memory (the CPU backend over MPI here; a GPU backend over NCCL or host-staged MPI).
DispatchBenchResult run_dispatch_bench(Backend& backend, Communicator& comm,
                                       const DispatchBenchOptions& o);

// The tables `a2a-bench` prints on rank 0 (bench/a2a_bench_table.cpp): the run's options in
// '#' header lines, then one row per size (alltoall) or per phase (dispatch).
void print_alltoall_table(const std::string& comm_name, int world, const AlltoallSweepOptions& o,
                          const std::vector<AlltoallRow>& rows);
void print_dispatch_table(const std::string& comm_name, int world, const DispatchBenchOptions& o,
                          const DispatchBenchResult& r);

}  // namespace qwen3moe::bench
