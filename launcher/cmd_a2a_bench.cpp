// qwen3moe a2a-bench: the all-to-all as the MoE layers use it, measured the way nccl-tests
// measures collectives (size count type time algbw busbw #wrong) so figures compare across
// machines and backends. --op alltoall sweeps a raw all_to_all_v; --op dispatch runs the real
// dispatch + combine under a synthetic router and sets it against a raw all_to_all_v of the
// same bytes. Only rank 0 prints; every rank runs the same collectives.
#include <memory>
#include <string>

#include "bench/a2a_bench.h"
#include "kernels/common/check.h"
#include "launcher/commands.h"
#include "launcher/model_communicator.h"
#include "launcher/process.h"
#include "launcher/runtime.h"

namespace qwen3moe::launcher {
namespace {

struct A2aBenchFlags {
  std::string op = "alltoall";
  bench::AlltoallSweepOptions sweep;
  bench::DispatchBenchOptions dispatch;
  int iters = 20;
  int warmup = 5;
  std::string backend = "cpu";  // dispatch: where the rows live
  std::string comm = "auto";    // dispatch with --backend cuda: nccl, mpi (host-staged), auto
};

void run_alltoall(Process& p, const bench::AlltoallSweepOptions& o) {
  const std::vector<bench::AlltoallRow> rows = bench::run_alltoall_sweep(*p.comm, o);
  int64_t wrong = 0;
  for (const bench::AlltoallRow& r : rows) wrong += r.wrong;
  if (p.root()) bench::print_alltoall_table(p.comm->name(), p.world, o, rows);
  // Every rank holds the same sums, so they all fail together.
  run_collectively(
      [&] { QWEN3MOE_CHECK(wrong == 0, "all_to_all_v delivered ", wrong, " wrong values"); });
}

void run_dispatch(Process& p, const bench::DispatchBenchOptions& o, const std::string& backend,
                  const std::string& comm) {
  // The rows in backend memory over the communicator the model would use: the model's path
  // (CPU: the process's MPI; CUDA: NCCL or host-staged MPI, as --comm says).
  BackendChoice b;
  std::unique_ptr<Communicator> device_comm;
  run_collectively([&] { b = make_backend(backend, 0); });
  run_collectively(
      [&] { device_comm = make_model_communicator(comm, *b.backend, b.device, *p.comm); });
  Communicator& c = device_comm ? *device_comm : *p.comm;
  const bench::DispatchBenchResult r = bench::run_dispatch_bench(*b.backend, c, o);
  if (p.root()) bench::print_dispatch_table(p.comm->name(), p.world, o, r);
  run_collectively([&] {
    QWEN3MOE_CHECK(r.wrong == 0, "dispatch+combine returned ", r.wrong, " wrong values of ",
                   r.checked, " (a token was routed or summed wrong)");
  });
}

void run_a2a_bench(A2aBenchFlags f) {
  Process& p = process();
  f.sweep.iters = f.dispatch.iters = f.iters;
  f.sweep.warmup = f.dispatch.warmup = f.warmup;
  // Every rank checks the same flags; the first failure ends all of them with one line.
  run_collectively([&] {
    if (f.op == "alltoall")
      bench::validate(f.sweep, p.world);
    else
      bench::validate(f.dispatch, p.world);
  });
  if (f.op == "alltoall")
    run_alltoall(p, f.sweep);
  else
    run_dispatch(p, f.dispatch, f.backend, f.comm);
}

}  // namespace

void register_a2a_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "a2a-bench", "All-to-all bandwidth (nccl-tests columns), raw or as MoE dispatch+combine");
  auto f = std::make_shared<A2aBenchFlags>();
  cmd->add_option("--op", f->op, "alltoall: raw all_to_all_v sweep; dispatch: MoE dispatch+combine")
      ->check(CLI::IsMember({"alltoall", "dispatch"}))
      ->capture_default_str();
  cmd->add_option("--min-bytes", f->sweep.min_bytes, "Smallest size: bytes sent per rank (1K, 1M)")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  cmd->add_option("--max-bytes", f->sweep.max_bytes, "Largest size: bytes sent per rank")
      ->transform(CLI::AsSizeValue(false))
      ->capture_default_str();
  cmd->add_option("--step-factor", f->sweep.step_factor, "Next size = size x factor (> 1)")
      ->capture_default_str();
  cmd->add_option("--iters", f->iters, "Timed iterations")->capture_default_str();
  cmd->add_option("--warmup", f->warmup, "Untimed iterations first")->capture_default_str();
  cmd->add_option("--tokens", f->dispatch.tokens, "dispatch: tokens per rank")
      ->capture_default_str();
  cmd->add_option("--hidden", f->dispatch.hidden, "dispatch: hidden size")->capture_default_str();
  cmd->add_option("--experts", f->dispatch.experts, "dispatch: experts (a multiple of the ranks)")
      ->capture_default_str();
  cmd->add_option("--top-k", f->dispatch.top_k, "dispatch: experts per token")
      ->capture_default_str();
  cmd->add_option("--routing", f->dispatch.routing,
                  "dispatch: uniform, or zipf:S (P(expert e) ~ 1/(e+1)^S)")
      ->capture_default_str();
  cmd->add_option("--seed", f->dispatch.seed, "dispatch: router seed")->capture_default_str();
  cmd->add_option("--backend", f->backend, "dispatch: rows in cpu or cuda memory")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--comm", f->comm,
                  "dispatch with --backend cuda: auto, mpi (host-staged) or nccl, as for the model")
      ->capture_default_str();
  cmd->add_option("--a2a-dtype", f->dispatch.a2a_dtype,
                  "dispatch: payload of the token rows, f32 or bf16 (ids and weights stay exact)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--a2a-capacity", f->dispatch.a2a_capacity,
                  "dispatch: > 0 runs the fixed-capacity exchange (decode's: blocks of this many "
                  "rows to every peer, no count exchange; >= --tokens), 0 the counted one")
      ->capture_default_str();
  cmd->callback([f] { run_a2a_bench(*f); });
}

}  // namespace qwen3moe::launcher
