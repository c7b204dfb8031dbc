#include "bench/a2a_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "kernels/common/check.h"
#include "kernels/common/random_hash.h"
#include "parallel/moe/expert_dispatch.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe::bench {
namespace {

constexpr size_t kMaxSweepBytes = size_t(1) << 30;  // host buffers: send + recv of this size
constexpr size_t kMaxSweepSizes = 256;

double now_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Uniform in [0, 1) from 53 random bits: our own so the routing is the same on every
// standard library.
double uniform01(uint64_t& state) {
  state = splitmix64(state);
  return double(state >> 11) * 0x1.0p-53;
}

// Mean over iterations of the slowest rank's time of that iteration: what the job as a whole
// waited, which is what a step of the model waits too.
double slowest_mean(Communicator& comm, const std::vector<double>& times) {
  const size_t W = static_cast<size_t>(comm.size()), n = times.size();
  if (n == 0) return 0;
  std::vector<double> all(W * n);
  comm.all_gather(times.data(), all.data(), n * sizeof(double));
  double sum = 0;
  for (size_t it = 0; it < n; ++it) {
    double worst = 0;
    for (size_t r = 0; r < W; ++r) worst = std::max(worst, all[r * n + it]);
    sum += worst;
  }
  return sum / double(n);
}

// Mean over ranks and iterations.
double rank_mean(Communicator& comm, const std::vector<double>& times) {
  const size_t W = static_cast<size_t>(comm.size()), n = times.size();
  if (n == 0) return 0;
  std::vector<double> all(W * n);
  comm.all_gather(times.data(), all.data(), n * sizeof(double));
  double sum = 0;
  for (double t : all) sum += t;
  return sum / double(all.size());
}

// Every rank's values of v, concatenated in rank order.
std::vector<uint64_t> gather_u64(Communicator& comm, const std::vector<uint64_t>& v) {
  std::vector<uint64_t> all(static_cast<size_t>(comm.size()) * v.size());
  comm.all_gather(v.data(), all.data(), v.size() * sizeof(uint64_t));
  return all;
}

int64_t sum_over_ranks(Communicator& comm, int64_t v) {
  std::vector<uint64_t> all = gather_u64(comm, {uint64_t(v)});
  int64_t sum = 0;
  for (uint64_t x : all) sum += int64_t(x);
  return sum;
}

double max_over_mean(const std::vector<double>& v) {
  if (v.empty()) return 0;
  double sum = 0, mx = 0;
  for (double x : v) {
    sum += x;
    mx = std::max(mx, x);
  }
  return sum > 0 ? mx / (sum / double(v.size())) : 0;
}

std::vector<size_t> prefix_offsets(const std::vector<size_t>& bytes) {
  std::vector<size_t> off(bytes.size(), 0);
  for (size_t i = 1; i < bytes.size(); ++i) off[i] = off[i - 1] + bytes[i - 1];
  return off;
}

}  // namespace

// ---- raw all_to_all_v sweep ------------------------------------------------------------------

void validate(const AlltoallSweepOptions& o, int world) {
  const size_t grain = size_t(world) * sizeof(float);
  QWEN3MOE_CHECK(o.min_bytes > 0, "--min-bytes must be positive, got 0");
  QWEN3MOE_CHECK(o.min_bytes <= o.max_bytes, "--min-bytes ", o.min_bytes, " exceeds --max-bytes ",
                 o.max_bytes);
  QWEN3MOE_CHECK(o.max_bytes <= kMaxSweepBytes, "--max-bytes ", o.max_bytes,
                 " exceeds the host buffer limit of ", kMaxSweepBytes, " bytes");
  QWEN3MOE_CHECK(o.min_bytes >= grain, "--min-bytes ", o.min_bytes,
                 " is less than one float per peer (", grain, " bytes at world ", world, ")");
  QWEN3MOE_CHECK(std::isfinite(o.step_factor) && o.step_factor > 1,
                 "--step-factor must be greater than 1, got ", o.step_factor);
  QWEN3MOE_CHECK(o.iters >= 1, "--iters must be at least 1, got ", o.iters);
  QWEN3MOE_CHECK(o.warmup >= 0, "--warmup must not be negative, got ", o.warmup);
  const double steps =
      std::log(double(o.max_bytes) / double(o.min_bytes)) / std::log(o.step_factor);
  QWEN3MOE_CHECK(steps < double(kMaxSweepSizes), "--step-factor ", o.step_factor, " from ",
                 o.min_bytes, " to ", o.max_bytes, " bytes gives more than ", kMaxSweepSizes,
                 " sizes");
}

std::vector<size_t> sweep_sizes(const AlltoallSweepOptions& o, int world) {
  validate(o, world);
  const size_t grain = size_t(world) * sizeof(float);
  std::vector<size_t> sizes;
  // Grown in double so a fractional factor compounds; sizes that round to the same multiple
  // of the grain are run once.
  for (double s = double(o.min_bytes); s <= double(o.max_bytes) * (1 + 1e-12); s *= o.step_factor) {
    const size_t rounded = size_t(s) / grain * grain;
    if (sizes.empty() || rounded > sizes.back()) sizes.push_back(rounded);
  }
  return sizes;
}

float alltoall_payload(int src, int dst, size_t i) {
  // A hash rather than src·K + i: a block that arrives from the wrong source or at a shifted
  // offset then mismatches almost everywhere instead of coinciding with a neighbour's values.
  const uint64_t key = (uint64_t(uint32_t(src)) << 48) ^ (uint64_t(uint32_t(dst)) << 32) ^ i;
  return float(splitmix64(key) & 0xFFFFFFull);
}

std::vector<AlltoallRow> run_alltoall_sweep(Communicator& comm, const AlltoallSweepOptions& o) {
  const int W = comm.size(), R = comm.rank();
  const std::vector<size_t> sizes = sweep_sizes(o, W);
  const size_t w = static_cast<size_t>(W);
  // One pair of buffers for the largest size: no allocation between timed iterations.
  std::vector<float> send(sizes.back() / sizeof(float)), recv(sizes.back() / sizeof(float));
  std::vector<size_t> bytes(w), offsets(w);
  std::vector<double> times(static_cast<size_t>(o.iters));
  std::vector<AlltoallRow> rows;
  for (size_t size : sizes) {
    const size_t per_peer = size / (w * sizeof(float));
    for (size_t p = 0; p < w; ++p) {
      bytes[p] = per_peer * sizeof(float);
      offsets[p] = p * per_peer * sizeof(float);
    }
    auto exchange = [&] {
      comm.all_to_all_v(send.data(), bytes.data(), offsets.data(), recv.data(), bytes.data(),
                        offsets.data());
    };

    // Correctness once per size, before timing: every value names its source, destination
    // and index, and recv starts out as a value no payload has (payloads are >= 0).
    for (size_t p = 0; p < w; ++p)
      for (size_t i = 0; i < per_peer; ++i) send[p * per_peer + i] = alltoall_payload(R, int(p), i);
    std::fill(recv.begin(), recv.begin() + std::ptrdiff_t(per_peer * w), -1.0f);
    exchange();
    int64_t wrong = 0;
    for (size_t s = 0; s < w; ++s)
      for (size_t i = 0; i < per_peer; ++i)
        wrong += recv[s * per_peer + i] != alltoall_payload(int(s), R, i);

    for (int it = 0; it < o.warmup; ++it) exchange();
    for (int it = 0; it < o.iters; ++it) {
      comm.barrier();  // every rank starts together: the time is the exchange, not the skew
      const double t0 = now_us();
      exchange();
      times[size_t(it)] = now_us() - t0;
    }

    AlltoallRow row;
    row.bytes = size;
    row.count = size / sizeof(float);
    row.time_us = slowest_mean(comm, times);
    row.algbw_gbs = row.time_us > 0 ? double(size) / row.time_us / 1e3 : 0;
    row.busbw_gbs = row.algbw_gbs * double(W - 1) / double(W);
    row.wrong = sum_over_ranks(comm, wrong);
    rows.push_back(row);
  }
  return rows;
}

// ---- dispatch + combine ----------------------------------------------------------------------

Routing parse_routing(const std::string& text) {
  Routing r;
  if (text == "uniform") return r;
  QWEN3MOE_CHECK(text.rfind("zipf:", 0) == 0, "--routing must be uniform or zipf:S, got '", text,
                 "'");
  const std::string num = text.substr(5);
  char* end = nullptr;
  const double s = num.empty() ? 0 : std::strtod(num.c_str(), &end);
  QWEN3MOE_CHECK(!num.empty() && end && *end == '\0' && std::isfinite(s) && s > 0,
                 "--routing zipf:S needs a positive exponent S, got '", num, "'");
  r.zipf = true;
  r.s = s;
  return r;
}

void validate(const DispatchBenchOptions& o, int world) {
  QWEN3MOE_CHECK(o.tokens > 0, "--tokens must be positive, got ", o.tokens);
  QWEN3MOE_CHECK(o.hidden > 0, "--hidden must be positive, got ", o.hidden);
  QWEN3MOE_CHECK(o.experts > 0, "--experts must be positive, got ", o.experts);
  QWEN3MOE_CHECK(o.experts % world == 0, o.experts, " experts cannot be split over ", world,
                 " ranks (--experts must be a multiple of the world size)");
  QWEN3MOE_CHECK(o.top_k >= 1 && o.top_k <= o.experts,
                 "--top-k must be in [1, --experts=", o.experts, "], got ", o.top_k);
  QWEN3MOE_CHECK(o.iters >= 1, "--iters must be at least 1, got ", o.iters);
  QWEN3MOE_CHECK(o.warmup >= 0, "--warmup must not be negative, got ", o.warmup);
  QWEN3MOE_CHECK(o.a2a_dtype == "f32" || o.a2a_dtype == "bf16",
                 "--a2a-dtype must be f32 or bf16, got '", o.a2a_dtype, "'");
  QWEN3MOE_CHECK(o.a2a_capacity == 0 || o.a2a_capacity >= o.tokens, "--a2a-capacity ",
                 o.a2a_capacity, " is below --tokens ", o.tokens,
                 ": the exchange would not be the fixed-capacity one");
  // Dispatch sends at most every token (or the capacity) to every rank; MPI counts are int.
  const double worst =
      double(std::max(o.tokens, o.a2a_capacity)) * double(o.hidden + 2 * o.top_k) * sizeof(float);
  QWEN3MOE_CHECK(worst < double(1u << 30), "--tokens ", o.tokens, " × --hidden ", o.hidden,
                 " is over 1 GiB per peer");
  parse_routing(o.routing);
}

void synthetic_routing(const DispatchBenchOptions& o, int rank, std::vector<int32_t>& ids,
                       std::vector<float>& weights) {
  const Routing routing = parse_routing(o.routing);
  const size_t E = static_cast<size_t>(o.experts), k = static_cast<size_t>(o.top_k);
  std::vector<double> p(E, 1.0);
  if (routing.zipf)
    for (size_t e = 0; e < E; ++e) p[e] = std::pow(double(e + 1), -routing.s);
  ids.assign(static_cast<size_t>(o.tokens) * k, 0);
  weights.assign(ids.size(), 0);
  uint64_t state = splitmix64(o.seed) ^ splitmix64(uint64_t(rank) + 0x5851F42D4C957F2Dull);
  std::vector<char> taken(E);
  for (size_t t = 0; t < size_t(o.tokens); ++t) {
    // k distinct experts, each drawn from what is left (a router's top-k never repeats one).
    std::fill(taken.begin(), taken.end(), 0);
    double left = 0;
    for (double x : p) left += x;
    float wsum = 0;
    for (size_t j = 0; j < k; ++j) {
      double u = uniform01(state) * left;
      size_t e = 0, last = 0;
      for (; e < E; ++e) {
        if (taken[e]) continue;
        last = e;
        if (u < p[e]) break;
        u -= p[e];
      }
      if (e == E) e = last;  // rounding left u just past the end
      taken[e] = 1;
      left -= p[e];
      ids[t * k + j] = int32_t(e);
      weights[t * k + j] = float(0.5 + uniform01(state));
      wsum += weights[t * k + j];
    }
    for (size_t j = 0; j < k; ++j) weights[t * k + j] /= wsum;
  }
}

DispatchBenchResult run_dispatch_bench(Backend& backend, Communicator& comm,
                                       const DispatchBenchOptions& o) {
  const int W = comm.size(), R = comm.rank();
  validate(o, W);
  const size_t w = static_cast<size_t>(W);
  const int64_t T = o.tokens, H = o.hidden, k = o.top_k, E = o.experts;
  std::vector<int32_t> ids;
  std::vector<float> weights;
  synthetic_routing(o, R, ids, weights);

  // Token rows whose values name (rank, token, index), so a row delivered to or returned for
  // the wrong token cannot pass the check.
  std::vector<float> x(static_cast<size_t>(T * H));
  const float* y = nullptr;  // combine's output
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < H; ++i)
      x[size_t(t * H + i)] =
          1.0f + float(splitmix64((uint64_t(R) << 40) ^ (uint64_t(t) << 20) ^ uint64_t(i)) % 4096) /
                     4096.0f;

  // The dispatcher as the model builds it: backend memory, the device communicator (here the
  // process's: the CPU backend's memory is host memory), experts placed by a Topology.
  const Topology topo = Topology::experts_only(R, W, E);
  ExpertDispatch dispatch(backend, comm, topo, H, k);
  dispatch.set_payload_dtype(o.a2a_dtype == "bf16" ? DType::BF16 : DType::F32);
  dispatch.reserve(T);
  dispatch.set_capacity(o.a2a_capacity);
  const int64_t El = E / W, max_rows = std::max((2 * W - 1) * T, o.a2a_capacity * W);
  std::vector<void*> owned;
  auto alloc = [&](size_t bytes) {
    owned.push_back(backend.alloc(std::max<size_t>(bytes, 4)));
    return owned.back();
  };
  struct Free {
    Backend& b;
    std::vector<void*>& p;
    ~Free() {
      for (void* q : p) b.free(q);
    }
  } free_all{backend, owned};
  auto* ids_dev = static_cast<int32_t*>(alloc(ids.size() * 4));
  auto* w_dev = static_cast<float*>(alloc(weights.size() * 4));
  auto* residual = static_cast<float*>(alloc(size_t(T * H) * 4));
  auto* rows = static_cast<float*>(alloc(size_t(max_rows * k * H) * 4));
  auto* offsets = static_cast<int32_t*>(alloc(size_t(El + 1) * 4));
  auto* active = static_cast<int32_t*>(alloc(size_t(El) * 4));
  auto* pair_row = static_cast<int32_t*>(alloc(size_t(max_rows * k) * 4));
  auto* pair_index = static_cast<int32_t*>(alloc(size_t(max_rows * k) * 4));
  backend.upload(ids_dev, ids.data(), ids.size() * 4);
  backend.upload(w_dev, weights.data(), weights.size() * 4);
  // The rows are written once: dispatch leaves input() as it is.
  backend.upload(dispatch.input(T), x.data(), x.size() * 4);
  std::vector<float> y_host(x.size());
  // Identity experts: each local expert returns its input, so a rank's partial row is the sum
  // of its experts' weights times the row, and combine must give sum(all k weights) × row. The
  // model's ops run them: moe_align, gather of the pairs' rows, moe_combine.
  auto run_experts = [&](const DispatchHandle& h, A2aProfiler* prof) {
    if (h.rows == 0) return;
    backend.moe_align(offsets, pair_row, pair_index, active, h.ids, h.rows, k, El);
    if (prof) {  // tokens per expert, as the model records them
      std::vector<int32_t> off(size_t(El + 1));
      backend.download(off.data(), offsets, off.size() * 4);
      for (int64_t e = 0; e < El; ++e)
        prof->record_expert_tokens(0, topo.expert_begin() + e, off[size_t(e + 1)] - off[size_t(e)]);
    }
    backend.gather_rows(rows, h.row_data, pair_row, h.rows * k, H);
    add_expert_outputs(backend, h, rows, pair_index, k, H);
  };
  auto round = [&](A2aProfiler* prof, double* dt_dispatch, double* dt_combine) {
    backend.zero(residual, size_t(T * H) * 4);
    comm.barrier();
    double t0 = now_us();
    const DispatchHandle h = dispatch.dispatch(T, T, ids_dev, w_dev, residual, 0, prof);
    backend.synchronize();  // a device backend's queued dispatch is part of its time
    if (dt_dispatch) *dt_dispatch = now_us() - t0;
    run_experts(h, prof);
    comm.barrier();
    t0 = now_us();
    dispatch.combine(h, prof);
    backend.synchronize();
    if (dt_combine) *dt_combine = now_us() - t0;
    backend.download(y_host.data(), residual, y_host.size() * 4);
    y = y_host.data();
  };
  // bf16 rows are rounded where they leave, both ways: up to 2^-8 of the value each time.
  const float rtol = o.a2a_dtype == "bf16" ? 1.0f / 128 : 1e-5f;
  auto count_wrong = [&] {
    int64_t wrong = 0;
    for (int64_t t = 0; t < T; ++t) {
      float wsum = 0;
      for (int64_t j = 0; j < k; ++j) wsum += weights[size_t(t * k + j)];
      for (int64_t i = 0; i < H; ++i) {
        const float expect = wsum * x[size_t(t * H + i)], got = y[t * H + i];
        wrong += !(std::fabs(got - expect) <= rtol * std::fabs(expect) + 1e-6f);
      }
    }
    return wrong;
  };

  // One run under the profiler: the bytes ExpertDispatch itself reports sending to each peer
  // are the matrices the raw all_to_all_v replays.
  A2aProfiler profiler(R, W, E, {true});
  profiler.set_device_clock(&backend);  // CUDA: phases timed by events on the stream
  round(&profiler, nullptr, nullptr);
  profiler.flush();
  int64_t wrong = count_wrong();
  // One rank exchanges nothing (dispatch is the identity): its bytes matrices are zero.
  const size_t exchanges = W > 1 ? 2 : 0;
  QWEN3MOE_CHECK(profiler.exchanges().size() == exchanges, "dispatch bench: expected ", exchanges,
                 " exchanges, got ", profiler.exchanges().size());
  const std::vector<uint64_t> d_row =
      W > 1 ? profiler.exchanges()[0].bytes_to : std::vector<uint64_t>(w, 0);
  const std::vector<uint64_t> c_row =
      W > 1 ? profiler.exchanges()[1].bytes_to : std::vector<uint64_t>(w, 0);
  const std::vector<uint64_t> d_all = gather_u64(comm, d_row), c_all = gather_u64(comm, c_row);

  DispatchBenchResult res;
  res.world = W;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<char> seen(w, 0);
    for (int64_t j = 0; j < k; ++j) seen[size_t(topo.expert_owner(ids[size_t(t * k + j)]))] = 1;
    for (char s : seen) res.pairs += s;
  }
  res.bytes_matrix.resize(w * w);
  std::vector<double> rank_bytes(w, 0);
  for (size_t i = 0; i < w * w; ++i) {
    res.bytes_matrix[i] = d_all[i] + c_all[i];
    res.mean_dispatch_bytes += double(d_all[i]) / double(W);
    res.mean_combine_bytes += double(c_all[i]) / double(W);
    rank_bytes[i / w] += double(res.bytes_matrix[i]);
  }
  for (size_t p = 0; p < w; ++p) {
    res.dispatch_bytes += d_row[p];
    res.combine_bytes += c_row[p];
  }
  for (double b : rank_bytes) {
    res.mean_rank_bytes += b / double(W);
    res.max_rank_bytes = std::max(res.max_rank_bytes, b);
  }

  // Load: token-expert pairs per expert (each rank counted its own experts' arrivals).
  std::vector<uint64_t> local(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e)
    local[size_t(e)] = uint64_t(profiler.expert_tokens()[0][size_t(e)]);
  const std::vector<uint64_t> all_tokens = gather_u64(comm, local);
  res.tokens_per_expert.assign(static_cast<size_t>(E), 0);
  for (size_t r = 0; r < w; ++r)
    for (size_t e = 0; e < size_t(E); ++e)
      res.tokens_per_expert[e] += int64_t(all_tokens[r * size_t(E) + e]);
  std::vector<double> per_expert(res.tokens_per_expert.begin(), res.tokens_per_expert.end());
  std::vector<double> per_rank(w, 0);
  for (size_t e = 0; e < size_t(E); ++e) per_rank[e / size_t(E / W)] += per_expert[e];
  res.expert_imbalance = max_over_mean(per_expert);
  res.rank_imbalance = max_over_mean(per_rank);

  // The raw exchanges: this rank's rows of the two matrices out, its columns in.
  std::vector<size_t> d_send(w), d_recv(w), c_send(w), c_recv(w);
  for (size_t p = 0; p < w; ++p) {
    d_send[p] = d_all[size_t(R) * w + p];
    d_recv[p] = d_all[p * w + size_t(R)];
    c_send[p] = c_all[size_t(R) * w + p];
    c_recv[p] = c_all[p * w + size_t(R)];
  }
  const std::vector<size_t> d_send_off = prefix_offsets(d_send),
                            d_recv_off = prefix_offsets(d_recv);
  const std::vector<size_t> c_send_off = prefix_offsets(c_send),
                            c_recv_off = prefix_offsets(c_recv);
  auto total = [](const std::vector<size_t>& v) {
    size_t s = 0;
    for (size_t b : v) s += b;
    return s;
  };
  std::vector<char> raw_send(std::max<size_t>({1, total(d_send), total(c_send)}), 1);
  std::vector<char> raw_recv(std::max<size_t>({1, total(d_recv), total(c_recv)}));

  // Each phase timed from a common start (barrier) and taken at its slowest rank, the raw
  // calls interleaved with the real ones so both see the same state of a shared machine. The
  // timed rounds run without the profiler (under a fixed capacity it adds a count and a read
  // the exchange itself does without); the same rounds again under it give the split.
  const size_t n = static_cast<size_t>(o.iters);
  std::vector<double> t_dispatch(n), t_combine(n), t_raw_d(n), t_raw_c(n);
  for (int it = -o.warmup; it < o.iters; ++it) {
    double dt_dispatch = 0, dt_combine = 0;
    round(nullptr, &dt_dispatch, &dt_combine);
    comm.barrier();
    double t0 = now_us();
    comm.all_to_all_v(raw_send.data(), d_send.data(), d_send_off.data(), raw_recv.data(),
                      d_recv.data(), d_recv_off.data());
    const double dt_raw_d = now_us() - t0;
    comm.barrier();
    t0 = now_us();
    comm.all_to_all_v(raw_send.data(), c_send.data(), c_send_off.data(), raw_recv.data(),
                      c_recv.data(), c_recv_off.data());
    const double dt_raw_c = now_us() - t0;
    if (it < 0) continue;
    t_dispatch[size_t(it)] = dt_dispatch;
    t_combine[size_t(it)] = dt_combine;
    t_raw_d[size_t(it)] = dt_raw_d;
    t_raw_c[size_t(it)] = dt_raw_c;
  }
  wrong += count_wrong();  // the timed runs must still route right
  res.wrong = sum_over_ranks(comm, wrong);
  res.checked = 2 * int64_t(W) * T * H;

  res.dispatch_us = slowest_mean(comm, t_dispatch);
  res.combine_us = slowest_mean(comm, t_combine);
  res.time_us = res.dispatch_us + res.combine_us;
  res.raw_us = slowest_mean(comm, t_raw_d) + slowest_mean(comm, t_raw_c);
  // The profiled rounds: their records (dispatch, combine, dispatch, ...) and phase times.
  std::vector<double> p_dispatch(n), p_combine(n);
  for (size_t it = 0; it < n; ++it) {
    round(&profiler, &p_dispatch[it], &p_combine[it]);
    profiler.flush();
  }
  const auto& ex = profiler.exchanges();
  std::vector<double> d_wait(n), d_transfer(n), c_wait(n), c_transfer(n);
  for (size_t it = 0; it < n && W > 1; ++it) {
    const A2aExchange& d = ex[ex.size() - 2 * n + 2 * it];
    const A2aExchange& c = ex[ex.size() - 2 * n + 2 * it + 1];
    d_wait[it] = d.wait_us;
    d_transfer[it] = d.transfer_us;
    c_wait[it] = c.wait_us;
    c_transfer[it] = c.transfer_us;
  }
  // Means over ranks, not maxima: the slowest wait and the slowest transfer are usually on
  // different ranks, and only one rank's parts add up to its phase time.
  res.dispatch_wait_us = rank_mean(comm, d_wait);
  res.dispatch_transfer_us = rank_mean(comm, d_transfer);
  res.dispatch_local_us =
      rank_mean(comm, p_dispatch) - res.dispatch_wait_us - res.dispatch_transfer_us;
  res.combine_wait_us = rank_mean(comm, c_wait);
  res.combine_transfer_us = rank_mean(comm, c_transfer);
  res.combine_local_us = rank_mean(comm, p_combine) - res.combine_wait_us - res.combine_transfer_us;
  const double bus = double(W - 1) / double(W);
  res.algbw_gbs = res.time_us > 0 ? res.mean_rank_bytes / res.time_us / 1e3 : 0;
  res.busbw_gbs = res.algbw_gbs * bus;
  res.raw_algbw_gbs = res.raw_us > 0 ? res.mean_rank_bytes / res.raw_us / 1e3 : 0;
  res.raw_busbw_gbs = res.raw_algbw_gbs * bus;
  res.ratio = res.raw_algbw_gbs > 0 ? res.algbw_gbs / res.raw_algbw_gbs : 0;
  return res;
}

}  // namespace qwen3moe::bench
