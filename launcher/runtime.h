// What every model-running subcommand sets up: config, weights, backend, communicator,
// topology and the model, plus the small parsers the commands share.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "kernels/backend.h"
#include "parallel/comm/communicator.h"
#include "parallel/topology.h"

namespace qwen3moe::launcher {

struct RuntimeOptions {
  std::string model_dir;
  std::string backend = "cpu";
  std::string comm = "auto";       // launcher/model_communicator.h
  int dp = 1;                      // attention data-parallel groups: world = dp x tp
  int tp = 0;                      // 0: the world size / dp
  int threads = 0;                 // 0: all cores
  double collective_timeout = 60;  // seconds; multi-rank jobs only
  std::string a2a_dtype = "f32";   // the MoE all-to-all's row payload: f32 or bf16
  // Tokens per rank of the MoE exchange's fixed-capacity mode; -1: derived from the command's
  // decode batch (set_a2a_capacity), 0: off.
  int64_t a2a_capacity = -1;
  std::string kv_dtype =
      "auto";  // the KV cache: auto (bf16 on CUDA, f32 on the CPU), f32, bf16, fp8
};

struct Runtime {
  ModelConfig config;
  DType kv_dtype = DType::F32;  // --kv-dtype resolved for this backend
  WeightStore weights;
  std::unique_ptr<Backend> backend;
  Communicator* comm = nullptr;  // the process's (launcher/process.h): host memory
  // The model's collectives on backend memory (--comm); null when `comm` serves (CPU).
  std::unique_ptr<Communicator> model_comm;
  std::unique_ptr<Topology> topo;
  // dp > 1: this rank's DP group of tp ranks, on host memory and (CUDA) on backend memory.
  std::unique_ptr<Communicator> group_comm, model_group_comm;
  std::unique_ptr<Model> model;
};

// --backend NAME for this rank: the CPU backend (`threads`, 0: all cores) or this rank's GPU.
struct BackendChoice {
  std::unique_ptr<Backend> backend;
  int device = -1;  // the CUDA device, -1 for the CPU
};
BackendChoice make_backend(const std::string& name, int threads);

// Loads on every rank; a failure on any rank is an AgreedError on all (launcher/process.h).
std::unique_ptr<Runtime> load_runtime(const RuntimeOptions& options);

// --kv-dtype for the options' backend (auto: bf16 on CUDA, f32 on the CPU); an error naming any
// other word.
DType kv_dtype_of(const RuntimeOptions& options);

// The fixed a2a capacity: --a2a-capacity, or by default room for a decode step of
// `decode_batch` sequences per DP group split over its ranks (ceil(decode_batch / tp) tokens
// per rank).
void set_a2a_capacity(Runtime& rt, const RuntimeOptions& options, int64_t decode_batch);

// A KV cache large enough for one sequence of `tokens` tokens.
std::unique_ptr<KvCache> cache_for(Runtime& rt, int64_t tokens);

// "1,2,3" -> ids; the Error names the bad element.
std::vector<int32_t> parse_ids(const std::string& text);

// Registers --backend, --comm, --threads, --dp, --tp, --collective-timeout, --a2a-dtype,
// --a2a-capacity and --kv-dtype on a subcommand.
void add_runtime_flags(CLI::App& cmd, RuntimeOptions& options);

}  // namespace qwen3moe::launcher
