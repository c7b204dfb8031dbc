// bench (CPU backend): prefill and decode b=1 of the whole engine on a random prompt, in
// hardware units and as a share of what this machine measurably does (memory read bandwidth,
// f32 FMA peak); and --gemm, the two CPU GEMM algorithms on the model's shapes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/engine/generate.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "parallel/comm/communicator.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe::bench {

struct CpuBenchOptions {
  int prompt_len = 512;
  int decode_tokens = 64;  // timed decode steps
  uint64_t seed = 0;       // of the prompt (seed + 1, as the weights use seed)
};

// Every rank builds one and makes the same calls (the engine's steps are collective); only the
// rank built with print = true prints.
class CpuBench {
 public:
  // Draws the prompt, measures this machine's bandwidth and FMA peak (collective: every rank its
  // share), prints the model and machine lines. `cache` holds prompt_len + decode_tokens tokens.
  CpuBench(Model& model, Communicator& comm, KvCache& cache, const CpuBenchOptions& options,
           bool print);
  // Two untimed tokens: pages in the weights and grows the workspace.
  void warm_up();
  // The timed run; each forward is one step of `profiler` when it is set.
  GenerationResult run(A2aProfiler* profiler);
  // The prefill and decode lines of a result of run().
  void print(const GenerationResult& r) const;

 private:
  Model& model_;
  Communicator& comm_;
  KvCache& cache_;
  CpuBenchOptions options_;
  bool print_;
  std::vector<int32_t> prompt_;  // [prompt_len] token ids, uniform over the vocabulary
  // The job's, summed over ranks: weights held, weights read per decode token, measured
  // memory read bandwidth and f32 FMA peak (all threads).
  double resident_bytes_ = 0, active_bytes_ = 0, read_gbs_ = 0, fma_gflops_ = 0;
};

// bench --gemm: our GEMM against BLAS on the model's projection shapes at M = 1 ... 512.
void run_gemm_bench(const ModelConfig& c);

}  // namespace qwen3moe::bench
