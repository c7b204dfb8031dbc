#include "launcher/runtime.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "kernels/common/check.h"
#include "kernels/common/split.h"
#include "launcher/model_communicator.h"
#include "launcher/process.h"

namespace qwen3moe::launcher {

BackendChoice make_backend(const std::string& name, int threads) {
  QWEN3MOE_CHECK(name == "cpu" || name == "cuda", "unknown backend '", name,
                 "' (expected cpu or cuda)");
#ifndef QWEN3MOE_HAVE_CUDA
  QWEN3MOE_CHECK(name == "cpu",
                 "backend 'cuda' is not available in this build (configure with nvcc present)");
#endif
  BackendChoice b;
#ifdef QWEN3MOE_HAVE_CUDA
  if (name == "cuda") {
    // One GPU per rank: the launcher narrows CUDA_VISIBLE_DEVICES; else local rank order.
    const int gpus = cuda_device_count();
    QWEN3MOE_CHECK(gpus > 0, "--backend cuda: no GPU is visible");
    b.device = process().rank % gpus;
    b.backend = make_cuda_backend(b.device);
  }
#endif
  if (!b.backend) b.backend = make_cpu_backend(threads);
  return b;
}

DType kv_dtype_of(const RuntimeOptions& o) {
  QWEN3MOE_CHECK(
      o.kv_dtype == "auto" || o.kv_dtype == "f32" || o.kv_dtype == "bf16" || o.kv_dtype == "fp8",
      "--kv-dtype must be auto, f32, bf16 or fp8, got '", o.kv_dtype, "'");
  return o.kv_dtype == "bf16"  ? DType::BF16
         : o.kv_dtype == "fp8" ? DType::F8E4M3
         : o.kv_dtype == "f32" ? DType::F32
         : o.backend == "cuda" ? DType::BF16  // auto: half the bytes where HBM is scarce
                               : DType::F32;
}

std::unique_ptr<Runtime> load_runtime(const RuntimeOptions& o) {
  auto rt = std::make_unique<Runtime>();
  run_collectively([&] {
    QWEN3MOE_CHECK(o.collective_timeout > 0, "--collective-timeout must be positive, got ",
                   o.collective_timeout);
    const int world = process().world;
    QWEN3MOE_CHECK(o.dp >= 1 && world % o.dp == 0, "--dp ", o.dp, " does not divide the world of ",
                   world, " ranks");
    QWEN3MOE_CHECK(o.tp >= 0, "--tp must be positive, got ", o.tp);
    QWEN3MOE_CHECK(o.tp == 0 || int64_t(o.dp) * o.tp == world, "--dp ", o.dp, " x --tp ", o.tp,
                   " = ", int64_t(o.dp) * o.tp, " is not the world of ", world, " ranks");
    QWEN3MOE_CHECK(o.a2a_capacity >= -1, "--a2a-capacity must be a token count, 0 (off) or -1 ",
                   "(the default: derived from the decode batch), got ", o.a2a_capacity);
    kv_dtype_of(o);
  });
  rt->kv_dtype = kv_dtype_of(o);
  enable_collective_watchdog(o.collective_timeout);
  int device = -1;  // the CUDA device of this rank
  run_collectively([&] {
    BackendChoice b = make_backend(o.backend, o.threads);  // a bad --backend fails first
    rt->backend = std::move(b.backend);
    device = b.device;
    rt->config = ModelConfig::load(o.model_dir);
    rt->weights = WeightStore::open(o.model_dir);
    rt->comm = process().comm.get();
  });
  // Apart from the loading above: a rank that failed there must not leave the others waiting
  // in the collectives that choosing the communicator runs.
  run_collectively([&] {
    rt->model_comm = make_model_communicator(o.comm, *rt->backend, device, *rt->comm);
    Communicator& model_comm = rt->model_comm ? *rt->model_comm : *rt->comm;
    TopologyShape shape{rt->config.num_attention_heads, rt->config.num_key_value_heads,
                        rt->config.num_experts, rt->config.vocab_size};
    rt->topo = std::make_unique<Topology>(rt->comm->rank(), rt->comm->size(),
                                          o.tp > 0 ? o.tp : rt->comm->size() / o.dp, shape);
    // The bar shows rank 0's share; every rank loads its own at the same time.
    const bool bar = rt->comm->rank() == 0 && isatty(STDERR_FILENO);
    rt->model = std::make_unique<Model>(rt->config, rt->weights, *rt->backend, model_comm,
                                        *rt->comm, *rt->topo, bar);
    rt->model->set_a2a_dtype(o.a2a_dtype == "bf16" ? DType::BF16 : DType::F32);
    if (o.a2a_capacity >= 0) rt->model->set_a2a_capacity(o.a2a_capacity);
  });
  // Apart again: the split is collective, and a rank whose weights failed above must not leave
  // the others waiting in it.
  if (rt->topo->dp() > 1) {
    run_collectively([&] {
      // The group's collectives: split from the world on the host, and on the backend the
      // same kind of communicator as the world's (NCCL, host-staged) built over that group.
      rt->group_comm = rt->comm->split(rt->topo->dp_rank(), rt->topo->tp_rank());
    });
    run_collectively([&] {
      rt->model_group_comm = make_model_communicator(o.comm, *rt->backend, device, *rt->group_comm);
      rt->model->set_attention_group(rt->model_group_comm ? *rt->model_group_comm : *rt->group_comm,
                                     *rt->group_comm);
    });
  }
  if (rt->comm->size() > 1) {
    // Each rank's share of the weights (its heads, KV heads, experts, vocabulary slice), so an
    // operator sees the split worked: about 1/world of the experts plus a share of the rest.
    const double mine = double(rt->model->resident_weight_bytes());
    std::vector<double> all(static_cast<size_t>(rt->comm->size()));
    rt->comm->all_gather(&mine, all.data(), sizeof(double));
    if (rt->comm->rank() == 0) {
      // Three significant digits, so a tiny model's split is visible too (not "0 0").
      std::string line = "[rank 0] qwen3moe: weights per rank (MB):";
      for (size_t r = 0; r < all.size(); ++r) {
        char mb[32];
        std::snprintf(mb, sizeof(mb), " %.3g", all[r] / 1e6);
        line += mb;
      }
      std::fprintf(stderr, "%s; %s; collectives: %s\n", line.c_str(), rt->topo->describe().c_str(),
                   (rt->model_comm ? rt->model_comm.get() : rt->comm)->name().c_str());
    }
  }
  return rt;
}

void set_a2a_capacity(Runtime& rt, const RuntimeOptions& o, int64_t decode_batch) {
  if (o.a2a_capacity >= 0) return;  // given: load_runtime set it
  run_collectively([&] {
    rt.model->set_a2a_capacity(
        ceil_div(std::max<int64_t>(decode_batch, 0), int64_t(rt.topo->tp())));
  });
}

std::unique_ptr<KvCache> cache_for(Runtime& rt, int64_t tokens) {
  constexpr int64_t kBlock = 16;
  return std::make_unique<KvCache>(rt.config, *rt.topo, *rt.backend, ceil_div(tokens, kBlock) + 1,
                                   kBlock, rt.kv_dtype);
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    const size_t a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    QWEN3MOE_CHECK(!item.empty() && ec == std::errc() && ptr == item.data() + item.size() &&
                       v >= INT32_MIN && v <= INT32_MAX,
                   "--ids: '", item, "' at position ", ids.size(), " is not an integer token id");
    ids.push_back(int32_t(v));
    start = end + 1;
  }
  return ids;
}

void add_runtime_flags(CLI::App& cmd, RuntimeOptions& o) {
  cmd.add_option("--backend", o.backend, "cpu or cuda")->capture_default_str();
  cmd.add_option("--comm", o.comm,
                 "Collectives of --backend cuda across ranks: auto (NCCL when every rank has its "
                 "own GPU, else mpi), mpi (MPI through pinned host buffers) or nccl")
      ->capture_default_str();
  cmd.add_option("--dp", o.dp,
                 "Attention data-parallel groups (world = dp x tp): each group of tp ranks holds "
                 "a whole copy of attention, its own KV cache and its own requests; the experts "
                 "stay spread over the whole world")
      ->capture_default_str();
  cmd.add_option("--tp", o.tp, "Tensor-parallel size within a DP group (default: world / dp)");
  cmd.add_option("--threads", o.threads, "CPU threads (default: all cores)");
  cmd.add_option("--collective-timeout", o.collective_timeout,
                 "Seconds a collective may take before the job ends naming the ranks that did "
                 "not arrive (multi-rank runs)")
      ->capture_default_str();
  cmd.add_option("--a2a-dtype", o.a2a_dtype,
                 "Payload of the MoE all-to-all's token rows: f32 (exact) or bf16 (half the "
                 "bytes; ids and weights stay exact)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd.add_option("--kv-dtype", o.kv_dtype,
                 "KV cache element: auto (bf16 on CUDA, f32 on the CPU), f32, bf16, or fp8 (e4m3 "
                 "over a per-KV-head scale); attention accumulates in f32 either way")
      ->capture_default_str();
  cmd.add_option("--a2a-capacity", o.a2a_capacity,
                 "Tokens per rank of the MoE all-to-all's fixed-capacity mode: steps with at most "
                 "that many tokens on every rank exchange fixed blocks and no counts (decode; with "
                 "NCCL one CUDA graph per step). Default: the decode batch over the world size; 0: "
                 "off");
}

}  // namespace qwen3moe::launcher
