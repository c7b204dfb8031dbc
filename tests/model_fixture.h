// Loads a tiny Hugging Face checkpoint from tests/fixtures with the CPU backend and one rank,
// and reads its float64-made reference outputs.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "kernels/backend.h"
#include "parallel/comm/communicator.h"
#include "parallel/topology.h"

namespace qwen3moe::testing {

// tests/fixtures, or $QWEN3MOE_FIXTURES_OVERRIDE when the binary runs from another checkout
// (the GPU check carries prebuilt test binaries to another machine).
inline std::string fixture(const std::string& rel) {
  const char* override_dir = std::getenv("QWEN3MOE_FIXTURES_OVERRIDE");
  return std::string(override_dir ? override_dir : QWEN3MOE_FIXTURES) + "/" + rel;
}

// The model on this process's rank of `comm` (a one-rank communicator when none is given);
// tp < the world size makes DP groups of tp ranks (attention data parallelism).
struct LoadedModel {
  explicit LoadedModel(const std::string& dir, Communicator* shared_comm = nullptr, int threads = 2,
                       int tp = 0)
      : config(ModelConfig::load(dir)),
        weights(WeightStore::open(dir)),
        backend(make_cpu_backend(threads)),
        owned_comm(shared_comm ? nullptr : make_local_communicator()),
        comm(shared_comm ? shared_comm : owned_comm.get()),
        topo(comm->rank(), comm->size(), tp,
             {config.num_attention_heads, config.num_key_value_heads, config.num_experts,
              config.vocab_size}),
        group(topo.dp() > 1 ? comm->split(topo.dp_rank(), topo.tp_rank()) : nullptr),
        model(config, weights, *backend, *comm, topo),
        cache(config, topo, *backend, 64, 16) {
    if (group) model.set_attention_group(*group, *group);
  }
  ModelConfig config;
  WeightStore weights;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Communicator> owned_comm;
  Communicator* comm;
  Topology topo;
  std::unique_ptr<Communicator> group;  // this rank's DP group (dp > 1)
  Model model;
  KvCache cache;
};

template <typename T>
std::vector<T> tensor_values(const TensorView& t) {
  std::vector<T> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), t.data, t.bytes);
  return out;
}

// One of the moe_fp8 fixture's GEMM checks (reference.safetensors gemm.<module>.*): its
// weight, x [m, K] and the float64 x · dequantized W^T, y [m, N].
struct Fp8GemmCase {
  std::string module;
  Weight weight;
  std::vector<float> x, y;
  int64_t m = 0;
};
struct Fp8Gemms {
  WeightStore store;  // the fixture's weights, which the cases' Weights point into
  std::vector<Fp8GemmCase> cases;
};
Fp8Gemms fp8_gemms();

// A checkpoint's fp8 tensor `module`.weight (128x128 blocks) as a Weight with its scales.
inline Weight fp8_weight(const WeightStore& store, const std::string& module) {
  const TensorView& t = store.get(module + ".weight");
  const TensorView& s = store.get(module + ".weight_scale_inv");
  Weight w{t.data, DType::F8E4M3, t.shape[0], t.shape[1], t.shape[1]};
  w.scale = reinterpret_cast<const float*>(s.data);
  w.block_rows = 128;
  w.block_cols = 128;
  w.scale_ld = s.shape[1];
  return w;
}

inline Fp8Gemms fp8_gemms() {
  const std::string dir = fixture("hf-tiny/moe_fp8");
  Fp8Gemms g{WeightStore::open(dir), {}};
  const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
  for (const auto& [name, view] : ref.all()) {
    if (!name.starts_with("gemm.") || !name.ends_with(".x")) continue;
    Fp8GemmCase c;
    c.module = name.substr(5, name.size() - 7);
    c.weight = fp8_weight(g.store, c.module);
    c.x = tensor_values<float>(ref.get(name));
    c.y = tensor_values<float>(ref.get("gemm." + c.module + ".y"));
    c.m = int64_t(c.x.size()) / c.weight.cols;
    g.cases.push_back(std::move(c));
  }
  return g;
}

}  // namespace qwen3moe::testing
