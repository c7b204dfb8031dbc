// qwen3moe a2a-bench: the all-to-all as the MoE layers use it, measured the way nccl-tests
// measures collectives (size count type time algbw busbw #wrong) so figures compare across
// machines and backends. --op alltoall sweeps a raw all_to_all_v; --op dispatch runs the real
// dispatch + combine under a synthetic router and sets it against a raw all_to_all_v of the
// same bytes. Only rank 0 prints; every rank runs the same collectives.
#include <cstdio>
#include <memory>
#include <string>

#include "kernels/common/check.h"
#include "launcher/commands.h"
#include "launcher/process.h"
#include "bench/a2a_bench.h"

namespace qwen3moe::launcher {
namespace {

struct A2aBenchFlags {
  std::string op = "alltoall";
  AlltoallSweepOptions sweep;
  DispatchBenchOptions dispatch;
  int iters = 20;
  int warmup = 5;
};

void run_alltoall(Process& p, const AlltoallSweepOptions& o) {
  const std::vector<AlltoallRow> rows = run_alltoall_sweep(*p.comm, o);
  int64_t wrong = 0;
  double busbw_sum = 0;
  for (const AlltoallRow& r : rows) {
    wrong += r.wrong;
    busbw_sum += r.busbw_gbs;
  }
  if (p.root()) {
    std::printf(
        "# qwen3moe a2a-bench --op alltoall: all_to_all_v over %s, %d ranks, equal "
        "per-peer sizes\n",
        p.comm->name().c_str(), p.world);
    std::printf(
        "# %d iters after %d warmup; time = mean over iters of the slowest rank "
        "(barrier before each)\n",
        o.iters, o.warmup);
    std::printf(
        "# size = bytes sent per rank; busbw = algbw * (n-1)/n; #wrong = payload values "
        "that arrived wrong, all ranks\n#\n");
    std::printf("# %12s %12s %6s %10s %12s %12s %7s\n", "size", "count", "type", "time(us)",
                "algbw(GB/s)", "busbw(GB/s)", "#wrong");
    for (const AlltoallRow& r : rows)
      std::printf("  %12zu %12zu %6s %10.2f %12.3f %12.3f %7lld\n", r.bytes, r.count, "float",
                  r.time_us, r.algbw_gbs, r.busbw_gbs, static_cast<long long>(r.wrong));
    std::printf("# avg busbw: %.3f GB/s\n", rows.empty() ? 0.0 : busbw_sum / double(rows.size()));
    std::fflush(stdout);
  }
  // Every rank holds the same sums, so they all fail together.
  run_collectively(
      [&] { QWEN3MOE_CHECK(wrong == 0, "all_to_all_v delivered ", wrong, " wrong values"); });
}

void run_dispatch(Process& p, const DispatchBenchOptions& o) {
  const DispatchBenchResult r = run_dispatch_bench(*p.comm, o);
  if (p.root()) {
    const double mb = 1e6;
    std::printf(
        "# qwen3moe a2a-bench --op dispatch: ExpertDispatch dispatch+combine over %s, "
        "%d ranks\n",
        p.comm->name().c_str(), p.world);
    std::printf(
        "# %lld tokens/rank, hidden %lld, %lld experts (%lld per rank), top-%lld, "
        "routing %s, seed %llu; %d iters after %d warmup\n",
        static_cast<long long>(o.tokens), static_cast<long long>(o.hidden),
        static_cast<long long>(o.experts), static_cast<long long>(o.experts / p.world),
        static_cast<long long>(o.top_k), o.routing.c_str(), static_cast<unsigned long long>(o.seed),
        o.iters, o.warmup);
    std::printf(
        "# load: token-expert pairs per expert max/mean %.2fx, per rank max/mean %.2fx; "
        "bytes sent per rank mean %.3f MB, max %.3f MB\n",
        r.expert_imbalance, r.rank_imbalance, r.mean_rank_bytes / mb, r.max_rank_bytes / mb);
    std::printf(
        "# rank 0 dispatched %lld (token, rank) pairs: %llu bytes out, %llu bytes back "
        "in combine\n",
        static_cast<long long>(r.pairs), static_cast<unsigned long long>(r.dispatch_bytes),
        static_cast<unsigned long long>(r.combine_bytes));
    std::printf(
        "# time = mean over iters of the slowest rank (barrier before each phase); "
        "raw_a2a = the same per-peer byte matrices through bare all_to_all_v\n#\n");
    std::printf("# %16s %14s %10s %12s %12s\n", "op", "bytes/rank", "time(us)", "algbw(GB/s)",
                "busbw(GB/s)");
    const double bus = p.world > 1 ? double(p.world - 1) / double(p.world) : 0.0;
    auto row = [&](const char* op, double bytes, double us) {
      const double algbw = us > 0 ? bytes / us / 1e3 : 0;
      std::printf("  %16s %14.0f %10.2f %12.3f %12.3f\n", op, bytes, us, algbw, algbw * bus);
    };
    row("dispatch", r.mean_dispatch_bytes, r.dispatch_us);
    row("combine", r.mean_combine_bytes, r.combine_us);
    row("dispatch+combine", r.mean_rank_bytes, r.time_us);
    row("raw_a2a", r.mean_rank_bytes, r.raw_us);
    std::printf("# dispatch+combine / raw all_to_all_v bandwidth: %.3fx (goal >= 0.9x)\n", r.ratio);
    std::printf(
        "# per rank (mean over ranks): dispatch = counts exchange %.2f + transfer %.2f + "
        "pack/unpack %.2f us; combine = counts exchange %.2f + transfer %.2f + sum %.2f "
        "us\n",
        r.dispatch_wait_us, r.dispatch_transfer_us, r.dispatch_local_us, r.combine_wait_us,
        r.combine_transfer_us, r.combine_local_us);
    std::printf(
        "# check: %lld wrong of %lld combined values (identity experts: output = sum of "
        "routing weights x input row)\n",
        static_cast<long long>(r.wrong), static_cast<long long>(r.checked));
    std::fflush(stdout);
  }
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
      validate(f.sweep, p.world);
    else
      validate(f.dispatch, p.world);
  });
  if (f.op == "alltoall")
    run_alltoall(p, f.sweep);
  else
    run_dispatch(p, f.dispatch);
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
  cmd->callback([f] { run_a2a_bench(*f); });
}

}  // namespace qwen3moe::launcher
