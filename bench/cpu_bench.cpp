#include "bench/cpu_bench.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "kernels/common/rng.h"
#include "kernels/cpu/fp8_avx512.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/peaks.h"

namespace qwen3moe::bench {

CpuBench::CpuBench(Model& model, Communicator& comm, KvCache& cache, const CpuBenchOptions& options,
                   bool print)
    : model_(model), comm_(comm), cache_(cache), options_(options), print_(print) {
  const ModelConfig& c = model.config();
  // Every rank measures at once, so each figure is its share of the machine; the job's are the
  // sums over ranks (weights and active bytes too: each rank holds and reads its slices).
  double mine[4] = {double(model.resident_weight_bytes()),
                    double(model.active_weight_bytes_per_token()), 0, 0};
  comm.barrier();  // the ranks measure together, each its share of the machine
  mine[2] = cpu::measure_read_bandwidth();
  comm.barrier();
  mine[3] = cpu::measure_fma_peak();
  std::vector<double> all(size_t(4 * comm.size()));
  comm.all_gather(mine, all.data(), sizeof(mine));
  double job[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < all.size(); ++i) job[i % 4] += all[i];
  resident_bytes_ = job[0];
  active_bytes_ = job[1];
  read_gbs_ = job[2];
  fma_gflops_ = job[3];
  if (print_) print_model_line(c);
  if (print_)
    std::printf("weights        %.3f GB resident, %.3f GB read per decode token (all ranks)\n",
                resident_bytes_ / 1e9, active_bytes_ / 1e9);
  if (print_)
    std::printf(
        "machine        %d ranks x %d threads, memory read %.1f GB/s (measured, 1 GiB stream), "
        "f32 FMA peak %.1f GFLOP/s (measured, AVX2); fp8 weights by the %s kernel\n",
        comm.size(), omp_get_max_threads(), read_gbs_, fma_gflops_,
        cpu::fp8_avx512_enabled() ? "AVX-512" : "AVX2");
  Rng rng(options.seed + 1);
  prompt_.resize(size_t(options.prompt_len));
  for (auto& t : prompt_) t = int32_t(rng.next() % uint64_t(c.vocab_size));
}

void CpuBench::warm_up() {
  GenerationOptions warm;
  warm.max_new_tokens = 2;
  warm.sampling.temperature = 0;
  warm.ignore_eos = true;
  generate(model_, comm_, cache_, prompt_, warm);
}

GenerationResult CpuBench::run(A2aProfiler* profiler) {
  GenerationOptions go;
  go.max_new_tokens = options_.decode_tokens + 1;  // the first token comes from the prefill
  go.sampling.temperature = 0;
  go.ignore_eos = true;
  go.profiler = profiler;
  return generate(model_, comm_, cache_, prompt_, go);
}

void CpuBench::print(const GenerationResult& r) const {
  if (!print_) return;
  const ModelConfig& c = model_.config();
  // Weights read per token by all ranks, as parameters (bf16: 2 bytes each).
  const double active_params = active_bytes_ / 2.0;
  const double pf = prefill_flops(c, active_params, options_.prompt_len);
  const double prefill_tps = options_.prompt_len / r.prefill_seconds;
  const double decode_steps = double(r.output_ids.size() - 1);
  const double decode_tps = decode_steps / r.decode_seconds;
  const double gbs = decode_tps * active_bytes_ / 1e9;
  std::printf("prefill        %d tokens in %.3f s: %.1f tok/s, %.1f GFLOP/s = %.1f%% of FMA peak\n",
              options_.prompt_len, r.prefill_seconds, prefill_tps, pf / r.prefill_seconds / 1e9,
              100.0 * pf / r.prefill_seconds / 1e9 / fma_gflops_);
  std::printf(
      "decode b=1     %.0f tokens in %.3f s: %.1f tok/s, %.1f ms/token, weights %.1f GB/s = "
      "%.1f%% of measured bandwidth\n",
      decode_steps, r.decode_seconds, decode_tps, 1e3 / decode_tps, gbs, 100.0 * gbs / read_gbs_);
}

void run_gemm_bench(const ModelConfig& c) {
  std::printf("\nGEMM algorithms on this model's shapes (bf16 weights, f32 activations)\n");
  std::printf("%-22s %6s %12s %12s %10s %10s\n", "shape [N x K]", "M", "own GFLOP/s",
              "blas GFLOP/s", "own GB/s", "blas GB/s");
  const int64_t shapes[][2] = {
      {c.q_dim(), c.hidden_size},
      {c.hidden_size, c.q_dim()},
      {c.is_moe() ? c.moe_intermediate_size : c.intermediate_size, c.hidden_size},
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

}  // namespace qwen3moe::bench
