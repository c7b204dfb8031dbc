// qwen3moe bench: prefill and decode throughput of the whole engine, in hardware units and as a
// share of what this machine measurably does (memory bandwidth, FMA peak). --gemm compares
// the two CPU GEMM algorithms on this model's shapes.
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/engine/generate.h"
#include "core/checkpoint/random_checkpoint.h"
#include "core/engine/sampling.h"
#include "kernels/common/check.h"
#include "kernels/cpu/peaks.h"
#include "kernels/cpu/ops.h"
#include "bench/bench_common.h"
#include "bench/cuda_bench.h"
#include "launcher/commands.h"
#include "launcher/process.h"
#include "launcher/profile.h"
#include "launcher/runtime.h"

namespace qwen3moe::launcher {
namespace {

struct BenchFlags {
  RuntimeOptions runtime;
  std::string config;
  bool random_weights = false;
  int prompt_len = 512;
  int decode_tokens = 64;
  uint64_t seed = 0;
  bool gemm = false;
  std::string decode_batches = "1";  // --backend cuda only
  int decode_context = 128;          // --backend cuda only
  ProfileOptions profile;
};

void bench_gemm(const ModelConfig& c) {
  std::printf("\nGEMM algorithms on this model's shapes (bf16 weights, f32 activations)\n");
  std::printf("%-22s %6s %12s %12s %10s %10s\n", "shape [N x K]", "M", "own GFLOP/s",
              "blas GFLOP/s", "own GB/s", "blas GB/s");
  const int64_t shapes[][2] = {{c.q_dim(), c.hidden_size},
                               {c.hidden_size, c.q_dim()},
                               {c.is_moe() ? c.moe_intermediate_size : c.intermediate_size,
                                c.hidden_size},
                               {c.vocab_size, c.hidden_size}};  // lm_head: far larger than L3
  for (const auto& s : shapes) {
    const int64_t N = s[0], K = s[1];
    std::vector<uint16_t> w(size_t(N * K));
    Rng rng(1);
    for (auto& v : w) v = f32_to_bf16(float(rng.uniform() - 0.5));
    const Weight weight{w.data(), DType::BF16, N, K, K};
    for (int64_t M : {1, 4, 16, 32, 64, 512}) {
      std::vector<float> x(size_t(M * K), 0.5f), y(size_t(M * N));
      double best[2] = {1e30, 1e30};
      for (int path = 0; path < 2; ++path) {
        for (int rep = 0; rep < 5; ++rep) {
          const double t0 = bench_now();
          int iters = 0;
          do {
            if (path == 0)
              cpu::matmul_own(y.data(), x.data(), weight, M, nullptr);
            else
              cpu::matmul_blas(y.data(), x.data(), weight, M, nullptr);
            ++iters;
          } while (bench_now() - t0 < 0.05);
          best[path] = std::min(best[path], (bench_now() - t0) / iters);
        }
      }
      const double flops = 2.0 * double(M * N * K), bytes = double(N * K * 2);
      char shape[32];
      std::snprintf(shape, sizeof(shape), "%lld x %lld", (long long)N, (long long)K);
      std::printf("%-22s %6lld %12.1f %12.1f %10.1f %10.1f\n", shape, (long long)M,
                  flops / best[0] / 1e9, flops / best[1] / 1e9, bytes / best[0] / 1e9,
                  bytes / best[1] / 1e9);
    }
  }
}

// --backend cuda: one GPU, random weights made on the device (bench/cuda_bench.cpp).
void run_bench_cuda(const BenchFlags& f) {
  run_collectively([&] {
    QWEN3MOE_CHECK(process().comm->size() == 1,
                   "bench --backend cuda runs on one rank (one GPU); got ", process().comm->size());
    QWEN3MOE_CHECK(f.random_weights != !f.runtime.model_dir.empty(),
                   "give exactly one of --model DIR or --random-weights --config FILE");
    QWEN3MOE_CHECK(!f.random_weights || !f.config.empty(), "--random-weights needs --config FILE");
    QWEN3MOE_CHECK(!f.gemm, "--gemm compares the CPU GEMMs; it does not apply to --backend cuda");
    CudaBenchOptions o;
    o.model_dir = f.runtime.model_dir;
    o.config_path = f.config;
    o.seed = f.seed;
    o.prompt_len = f.prompt_len;
    o.decode_tokens = f.decode_tokens;
    o.decode_context = f.decode_context;
    o.decode_batches.clear();
    for (int32_t b : parse_ids(f.decode_batches)) o.decode_batches.push_back(int(b));
    QWEN3MOE_CHECK(!o.decode_batches.empty(), "--decode-batches: empty list");
    run_cuda_bench(o);
  });
}

void run_bench(BenchFlags f) {
  if (f.runtime.backend == "cuda") return run_bench_cuda(f);
  namespace fs = std::filesystem;
  Process& proc = process();
  fs::path temp;
  run_collectively([&] {
    QWEN3MOE_CHECK(f.random_weights != !f.runtime.model_dir.empty(),
                   "give exactly one of --model DIR or --random-weights --config FILE");
    QWEN3MOE_CHECK(f.prompt_len > 0, "--prompt-len must be positive, got ", f.prompt_len);
    QWEN3MOE_CHECK(f.decode_tokens > 0, "--decode-tokens must be positive, got ",
                   f.decode_tokens);
    if (!f.random_weights) return;
    QWEN3MOE_CHECK(!f.config.empty(), "--random-weights needs --config FILE");
    // One checkpoint for the whole job, written by rank 0 under rank 0's pid (one machine).
    int64_t pid = getpid();
    proc.comm->broadcast(&pid, sizeof(pid), 0);
    temp = fs::temp_directory_path() / ("qwen3moe-bench-" + std::to_string(pid));
    f.runtime.model_dir = temp.string();
    if (!proc.root()) return;
    RandomCheckpointOptions ro;
    ro.seed = f.seed;
    ro.progress = isatty(STDERR_FILENO);
    write_random_checkpoint(f.config, temp.string(), ro);
  });
  struct Cleanup {
    fs::path p;
    bool root;
    ~Cleanup() {
      if (root && !p.empty()) fs::remove_all(p);
    }
  } cleanup{temp, proc.root()};

  auto rt = load_runtime(f.runtime);
  const ModelConfig& c = rt->config;
  run_collectively([&] {
    QWEN3MOE_CHECK(f.prompt_len + f.decode_tokens <= c.max_position_embeddings, "--prompt-len ",
                   f.prompt_len, " + --decode-tokens ", f.decode_tokens,
                   " exceeds max_position_embeddings=", c.max_position_embeddings);
  });
  const int threads = omp_get_max_threads();
  const bool root = proc.root();
  if (root)
    std::printf("model          %s, %lld layers, hidden %lld, %s\n", c.architecture.c_str(),
              (long long)c.num_hidden_layers, (long long)c.hidden_size,
              c.is_moe() ? (std::to_string(c.num_experts) + " experts top-" +
                            std::to_string(c.num_experts_per_tok)).c_str()
                         : "dense");
  if (root)
    std::printf("weights        %.3f GB resident, %.3f GB read per decode token\n",
              double(rt->model->resident_weight_bytes()) / 1e9,
              double(rt->model->active_weight_bytes_per_token()) / 1e9);
  const double bw = cpu::measure_read_bandwidth();
  const double peak = cpu::measure_fma_peak();
  if (root)
    std::printf("machine        %d threads, memory read %.1f GB/s (measured, 1 GiB stream), "
              "f32 FMA peak %.1f GFLOP/s (measured, AVX2)\n",
              threads, bw, peak);

  Rng rng(f.seed + 1);
  std::vector<int32_t> prompt(size_t(f.prompt_len));
  for (auto& t : prompt) t = int32_t(rng.next() % uint64_t(c.vocab_size));
  auto cache = cache_for(*rt, f.prompt_len + f.decode_tokens);

  // Warm-up: page in the weights and grow the workspace.
  {
    GenerateOptions warm;
    warm.max_new_tokens = 2;
    warm.sampling.temperature = 0;
    warm.ignore_eos = true;
    generate(*rt->model, *rt->comm, *cache, prompt, warm);
  }
  GenerateOptions go;
  go.max_new_tokens = f.decode_tokens + 1;  // the first token comes from the prefill
  go.sampling.temperature = 0;
  go.ignore_eos = true;
  // Only the timed run is profiled (the warm-up would double the counts).
  A2aProfileScope profile(f.profile, *rt->model, *rt->comm);
  go.profiler = profile.get();
  const GenerateResult r = generate(*rt->model, *rt->comm, *cache, prompt, go);
  profile.finish();

  if (!root) return;
  // Weights read per token on this rank, as parameters (bf16: 2 bytes each).
  const double active_params = double(rt->model->active_weight_bytes_per_token()) / 2.0;
  const double pf = prefill_flops(c, active_params, f.prompt_len);
  const double prefill_tps = f.prompt_len / r.prefill_seconds;
  const double decode_steps = double(r.output_ids.size() - 1);
  const double decode_tps = decode_steps / r.decode_seconds;
  const double gbs = decode_tps * double(rt->model->active_weight_bytes_per_token()) / 1e9;
  std::printf("prefill        %d tokens in %.3f s: %.1f tok/s, %.1f GFLOP/s = %.1f%% of FMA peak\n",
              f.prompt_len, r.prefill_seconds, prefill_tps, pf / r.prefill_seconds / 1e9,
              100.0 * pf / r.prefill_seconds / 1e9 / peak);
  std::printf("decode b=1     %.0f tokens in %.3f s: %.1f tok/s, %.1f ms/token, weights %.1f GB/s = "
              "%.1f%% of measured bandwidth\n",
              decode_steps, r.decode_seconds, decode_tps, 1e3 / decode_tps, gbs, 100.0 * gbs / bw);
  if (f.gemm) bench_gemm(c);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Prefill and decode throughput (tok/s, GB/s, GFLOP/s)");
  auto f = std::make_shared<BenchFlags>();
  cmd->add_option("--model", f->runtime.model_dir, "Hugging Face model folder");
  cmd->add_flag("--random-weights", f->random_weights, "Random bf16 weights for --config");
  cmd->add_option("--config", f->config, "config.json for --random-weights");
  cmd->add_option("--prompt-len", f->prompt_len, "Prefill length")->capture_default_str();
  cmd->add_option("--decode-tokens", f->decode_tokens, "Decode steps timed")->capture_default_str();
  cmd->add_option("--seed", f->seed, "Seed of weights and prompt")->capture_default_str();
  cmd->add_flag("--gemm", f->gemm, "Also compare the CPU GEMM algorithms on the model's shapes");
  cmd->add_option("--decode-batches", f->decode_batches,
                  "--backend cuda: batch sizes decoded, e.g. 1,16,64")
      ->capture_default_str();
  cmd->add_option("--decode-context", f->decode_context,
                  "--backend cuda: tokens each decode sequence holds before the timed steps")
      ->capture_default_str();
  add_runtime_flags(*cmd, f->runtime);
  add_profile_flags(*cmd, f->profile);
  cmd->callback([f] { run_bench(*f); });
}

}  // namespace qwen3moe::launcher
