// qwen3moe bench: the flags, the checkpoint (given or random) and the runtime; the harnesses
// themselves are bench/cpu_bench.h (CPU: engine throughput, --gemm) and bench/cuda_bench.h.
#include <unistd.h>

#include <filesystem>

#include "bench/cpu_bench.h"
#include "bench/cuda_bench.h"
#include "core/checkpoint/random_checkpoint.h"
#include "kernels/common/check.h"
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

// --backend cuda: one GPU, random weights made on the device (bench/cuda_bench.cpp).
void run_bench_cuda(const BenchFlags& f) {
  run_collectively([&] {
    QWEN3MOE_CHECK(process().comm->size() == 1,
                   "bench --backend cuda runs on one rank (one GPU); got ", process().comm->size());
    QWEN3MOE_CHECK(f.random_weights != !f.runtime.model_dir.empty(),
                   "give exactly one of --model DIR or --random-weights --config FILE");
    QWEN3MOE_CHECK(!f.random_weights || !f.config.empty(), "--random-weights needs --config FILE");
    QWEN3MOE_CHECK(!f.gemm, "--gemm compares the CPU GEMMs; it does not apply to --backend cuda");
    bench::CudaBenchOptions o;
    o.model_dir = f.runtime.model_dir;
    o.config_path = f.config;
    o.seed = f.seed;
    o.prompt_len = f.prompt_len;
    o.decode_tokens = f.decode_tokens;
    o.decode_context = f.decode_context;
    o.kv_dtype = kv_dtype_of(f.runtime);
    o.decode_batches.clear();
    for (int32_t b : parse_ids(f.decode_batches)) o.decode_batches.push_back(int(b));
    QWEN3MOE_CHECK(!o.decode_batches.empty(), "--decode-batches: empty list");
    bench::run_cuda_bench(o);
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
    QWEN3MOE_CHECK(f.decode_tokens > 0, "--decode-tokens must be positive, got ", f.decode_tokens);
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
    // The layout the config describes: fp8 projections when it has an fp8 quantization_config.
    if (ModelConfig::load(f.config).quantization.fp8()) ro.dtype = "fp8";
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
  set_a2a_capacity(*rt, f.runtime, 1);  // one sequence decodes
  const ModelConfig& c = rt->config;
  run_collectively([&] {
    QWEN3MOE_CHECK(f.prompt_len + f.decode_tokens <= c.max_position_embeddings, "--prompt-len ",
                   f.prompt_len, " + --decode-tokens ", f.decode_tokens,
                   " exceeds max_position_embeddings=", c.max_position_embeddings);
  });
  auto cache = cache_for(*rt, f.prompt_len + f.decode_tokens);
  bench::CpuBenchOptions o;
  o.prompt_len = f.prompt_len;
  o.decode_tokens = f.decode_tokens;
  o.seed = f.seed;
  bench::CpuBench b(*rt->model, *rt->comm, *cache, o, proc.root());
  b.warm_up();
  // Only the timed run is profiled (the warm-up would double the counts).
  A2aProfileScope profile(f.profile, *rt->model, *rt->comm);
  const GenerationResult r = b.run(profile.get());
  profile.finish();
  b.print(r);
  if (f.gemm && proc.root()) bench::run_gemm_bench(c);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Prefill and decode throughput (tok/s, GB/s, GFLOP/s)");
  auto f = std::make_shared<BenchFlags>();
  cmd->add_option("--model", f->runtime.model_dir, "Hugging Face model folder");
  cmd->add_flag("--random-weights", f->random_weights,
                "Random weights for --config, made where they run: bf16, the projections fp8 with "
                "block scales when the config has an fp8 quantization_config");
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
