// The tables of `qwen3moe a2a-bench`, in nccl-tests' columns (size count type time algbw busbw
// #wrong) so figures compare across machines and backends.
#include <cstdio>

#include "bench/a2a_bench.h"

namespace qwen3moe::bench {

void print_alltoall_table(const std::string& comm_name, int world, const AlltoallSweepOptions& o,
                          const std::vector<AlltoallRow>& rows) {
  double busbw_sum = 0;
  for (const AlltoallRow& r : rows) busbw_sum += r.busbw_gbs;
  std::printf(
      "# qwen3moe a2a-bench --op alltoall: all_to_all_v over %s, %d ranks, equal "
      "per-peer sizes\n",
      comm_name.c_str(), world);
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

void print_dispatch_table(const std::string& comm_name, int world, const DispatchBenchOptions& o,
                          const DispatchBenchResult& r) {
  const double mb = 1e6;
  std::printf(
      "# qwen3moe a2a-bench --op dispatch: ExpertDispatch dispatch+combine over %s, "
      "%d ranks\n",
      comm_name.c_str(), world);
  std::printf(
      "# %lld tokens/rank, hidden %lld, %lld experts (%lld per rank), top-%lld, "
      "routing %s, seed %llu, %s rows; %d iters after %d warmup\n",
      static_cast<long long>(o.tokens), static_cast<long long>(o.hidden),
      static_cast<long long>(o.experts), static_cast<long long>(o.experts / world),
      static_cast<long long>(o.top_k), o.routing.c_str(), static_cast<unsigned long long>(o.seed),
      o.a2a_dtype.c_str(), o.iters, o.warmup);
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
  const double bus = world > 1 ? double(world - 1) / double(world) : 0.0;
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

}  // namespace qwen3moe::bench
