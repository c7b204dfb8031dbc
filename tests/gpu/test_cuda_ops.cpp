// Every CUDA op against its CPU twin (kernels/cpu) on the same inputs: floats within
// atol + rtol, integers (router ids) exact. And the fixture parity through the CUDA backend.
// Without a GPU every test reports SKIPPED with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "core/engine/engine.h"
#include "core/engine/generate.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "cuda_op_test.h"
#include "kernels/backend.h"
#include "kernels/common/dtype.h"
#include "kernels/cuda/ops.h"
#include "model_fixture.h"
#include "parallel/comm/local_device_communicator.h"
#include "parallel/profile/a2a_profiler.h"

namespace qwen3moe {
namespace {

using testing::CudaOps;
using testing::router_like_ids;

TEST_F(CudaOps, MatmulBf16MatchesCpu) {
  for (int64_t m : {1, 3, 17, 64}) {
    const int64_t N = 96, K = 200;
    std::vector<float> wf = randn(size_t(N * K), 1, 0.1f), x = randn(size_t(m * K), 2);
    std::vector<uint16_t> w(wf.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(wf[i]);
    const std::vector<float> bias = randn(size_t(N), 3);
    Weight hw{w.data(), DType::BF16, N, K, K};
    std::vector<float> want(static_cast<size_t>(m * N));
    cpu->matmul(want.data(), x.data(), hw, m, bias.data());
    const Weight dw = gpu->map_weight(hw);
    float* y = dev(std::vector<float>(size_t(m * N)));
    gpu->matmul(y, dev(x), dw, m, dev(bias));
    expect_close(host(y, size_t(m * N)), want, 1e-4f, 1e-4f, "matmul");
  }
}

TEST_F(CudaOps, NormsRopeSiluAddMatchCpu) {
  const int64_t T = 5, H = 4, D = 64;
  const std::vector<float> x = randn(size_t(T * H * D), 4), w = randn(size_t(D), 5);
  std::vector<float> want(x.size());
  cpu->rmsnorm(want.data(), x.data(), w.data(), T * H, D, 1e-6f);
  float* y = dev(std::vector<float>(x.size()));
  gpu->rmsnorm(y, dev(x), dev(w), T * H, D, 1e-6f);
  expect_close(host(y, x.size()), want, 1e-5f, 1e-5f, "rmsnorm");

  const std::vector<int32_t> pos = {0, 1, 7, 100, 4000};
  std::vector<float> r = x;
  std::vector<float> inv_freq(size_t(D / 2));
  for (int64_t i = 0; i < D / 2; ++i)
    inv_freq[size_t(i)] = float(std::pow(1e6, -double(2 * i) / double(D))) * (i % 3 ? 1.0f : 0.25f);
  cpu->rope(r.data(), pos.data(), T, H, D, inv_freq.data(), 1.1f);
  float* dr = dev(x);
  gpu->rope(dr, dev(pos), T, H, D, dev(inv_freq), 1.1f);
  expect_close(host(dr, x.size()), r, 1e-5f, 1e-5f, "rope");

  const std::vector<float> g = randn(x.size(), 6), u = randn(x.size(), 7);
  std::vector<float> s(x.size());
  cpu->silu_mul(s.data(), g.data(), u.data(), T * H, D);
  float* ds = dev(std::vector<float>(x.size()));
  gpu->silu_mul(ds, dev(g), dev(u), T * H, D);
  expect_close(host(ds, x.size()), s, 1e-6f, 1e-5f, "silu_mul");

  std::vector<float> a = g;
  cpu->add(a.data(), u.data(), int64_t(a.size()));
  float* da = dev(g);
  gpu->add(da, dev(u), int64_t(a.size()));
  expect_close(host(da, a.size()), a, 0.0f, 0.0f, "add");
}

TEST_F(CudaOps, RouterIdsExactWeightsClose) {
  const int64_t T = 33, E = 128, k = 8;
  const std::vector<float> logits = randn(size_t(T * E), 8, 2.0f);
  for (bool norm : {true, false}) {
    std::vector<int32_t> ids(static_cast<size_t>(T * k));
    std::vector<float> wts(static_cast<size_t>(T * k));
    cpu->router_topk(ids.data(), wts.data(), logits.data(), T, E, k, norm);
    int32_t* di = dev(std::vector<int32_t>(ids.size()));
    float* dw = dev(std::vector<float>(wts.size()));
    gpu->router_topk(di, dw, dev(logits), T, E, k, norm);
    EXPECT_EQ(host(di, ids.size()), ids) << "normalize " << norm;
    expect_close(host(dw, wts.size()), wts, 1e-6f, 1e-5f, "router weights");
  }
}

// Attention over a paged cache in each KV dtype: the caches written by the CPU's
// kv_cache_write (f32, bf16, fp8 with per-head scales), the same bytes on the GPU.
TEST_F(CudaOps, AttentionOverPagedCacheMatchesCpu) {
  const int64_t Hq = 8, Hkv = 2, D = 64, bs = 16, blocks = 12, slots = blocks * bs;
  const std::vector<float> k = randn(size_t(slots * Hkv * D), 9),
                           v = randn(size_t(slots * Hkv * D), 10);
  std::vector<int32_t> all(static_cast<size_t>(slots));
  for (int64_t i = 0; i < slots; ++i) all[size_t(i)] = int32_t(i);
  const std::vector<float> scales = {0.5f, 2.0f};
  // Two sequences with scattered blocks; tokens at several positions of each.
  const std::vector<int32_t> tables = {5, 2, 9, 0, 11, 7, 1, 3};  // [2, 4]
  const std::vector<int32_t> pos = {0, 20, 63, 3, 47}, seq = {0, 0, 0, 1, 1};
  const std::vector<float> q = randn(size_t(5 * Hq * D), 11);
  for (const DType dt : {DType::F32, DType::BF16, DType::F8E4M3}) {
    const size_t bytes = size_t(slots * Hkv * D) * dtype_size(dt);
    std::vector<uint8_t> kc(bytes), vc(bytes);
    KvCacheView hc{kc.data(), vc.data(), dt, scales.data(), scales.data()};
    cpu->kv_cache_write(hc, k.data(), v.data(), all.data(), slots, Hkv * D, D);
    AttentionBatch hb{5, pos.data(), seq.data(), tables.data(), 4, int(bs)};
    std::vector<float> want(q.size());
    cpu->attention(want.data(), q.data(), hc, hb, Hq, Hkv, D, 0.125f);
    KvCacheView dc{dev(kc), dev(vc), dt, dev(scales), dev(scales)};
    AttentionBatch db{5, dev(pos), dev(seq), dev(tables), 4, int(bs)};
    float* out = dev(std::vector<float>(q.size()));
    gpu->attention(out, dev(q), dc, db, Hq, Hkv, D, 0.125f);
    expect_close(host(out, q.size()), want, 2e-5f, 1e-4f,
                 (std::string("attention, KV ") + dtype_name(dt)).c_str());
  }
}

TEST_F(CudaOps, RowMovesMatchCpu) {
  const int64_t T = 6, H = 40;
  const std::vector<float> x = randn(size_t(T * H), 12);
  const std::vector<int32_t> idx = {3, 0, 3, 5, 1};
  std::vector<float> g(static_cast<size_t>(5 * H));
  cpu->gather_rows(g.data(), x.data(), idx.data(), 5, H);
  float* dg = dev(std::vector<float>(g.size()));
  gpu->gather_rows(dg, dev(x), dev(idx), 5, H);
  expect_close(host(dg, g.size()), g, 0, 0, "gather_rows");
}

// The KV write at the given slots in each dtype, bit for bit with the CPU (bf16 and e4m3
// rounded to nearest even, e4m3 saturating); padding tokens (kPaddingSlot) write nothing.
TEST_F(CudaOps, KvCacheWriteEqualsCpu) {
  const int64_t T = 5, D = 72, heads = 2, slots_total = 40;
  std::vector<float> k = randn(size_t(T * heads * D), 13, 40.0f), v = randn(k.size(), 14);
  k[3] = 1e4f;  // past e4m3's 448 once scaled
  const std::vector<int32_t> slots = {7, kPaddingSlot, 39, 0, kPaddingSlot};
  const std::vector<float> scales = {0.25f, 3.0f};
  for (const DType dt : {DType::F32, DType::BF16, DType::F8E4M3}) {
    const size_t bytes = size_t(slots_total * heads * D) * dtype_size(dt);
    std::vector<uint8_t> kc(bytes, 0x5A), vc(bytes, 0x5A);
    uint8_t* dkc = dev(kc);
    uint8_t* dvc = dev(vc);
    cpu->kv_cache_write({kc.data(), vc.data(), dt, scales.data(), scales.data()}, k.data(),
                        v.data(), slots.data(), T, heads * D, D);
    gpu->kv_cache_write({dkc, dvc, dt, dev(scales), dev(scales)}, dev(k), dev(v), dev(slots), T,
                        heads * D, D);
    EXPECT_EQ(host(dkc, kc.size()), kc) << "K " << dtype_name(dt);
    EXPECT_EQ(host(dvc, vc.size()), vc) << "V " << dtype_name(dt);
  }
}

// One launch (decode, <= 64 tokens) and three (prefill) against the counting sort on the CPU;
// integers, so exact. Outputs start as -7 so an unwritten entry shows.
TEST_F(CudaOps, MoeAlignExact) {
  for (auto [T, k, E] : {std::tuple<int64_t, int64_t, int64_t>{1, 8, 128},
                         {16, 8, 128},
                         {64, 8, 128},
                         {65, 8, 128},
                         {300, 2, 8},
                         {2048, 8, 128},
                         {100, 4, 60}}) {
    std::vector<int32_t> ids = router_like_ids(T, k, E, uint32_t(T + E));
    if (T == 300) ids[17] = int32_t(E), ids[40] = -1;  // dropped pairs
    const size_t P = size_t(T * k);
    std::vector<int32_t> off(static_cast<size_t>(E + 1)), tok(P), idx(P),
        act(static_cast<size_t>(E));
    cpu->moe_align(off.data(), tok.data(), idx.data(), act.data(), ids.data(), T, k, E);
    int32_t* d_off = dev(std::vector<int32_t>(off.size(), -7));
    int32_t* d_tok = dev(std::vector<int32_t>(P, -7));
    int32_t* d_idx = dev(std::vector<int32_t>(P, -7));
    int32_t* d_act = dev(std::vector<int32_t>(act.size(), -7));
    gpu->moe_align(d_off, d_tok, d_idx, d_act, dev(ids), T, k, E);
    EXPECT_EQ(host(d_off, off.size()), off) << "offsets T=" << T;
    EXPECT_EQ(host(d_tok, P), tok) << "pair_token T=" << T;
    EXPECT_EQ(host(d_idx, P), idx) << "pair_index T=" << T;
    EXPECT_EQ(host(d_act, act.size()), act) << "active T=" << T;
  }
}

// Every kernel of moe_matmul (gemv at 1, 2, 4, 8 rows per chunk and looping chunks; wmma on
// split-bf16 tensor cores; the plain one for K % 8 != 0) against the CPU grouped GEMM.
TEST_F(CudaOps, MoeMatmulMatchesCpu) {
  struct Case {
    int64_t T, k, E, N, K;
  };
  for (const Case c :
       {Case{1, 8, 128, 96, 256}, Case{2, 8, 128, 100, 64}, Case{4, 4, 16, 64, 128},
        Case{64, 8, 128, 96, 256}, Case{30, 2, 8, 64, 128}, Case{40, 8, 8, 72, 136},
        Case{512, 8, 128, 200, 256}, Case{300, 2, 8, 64, 96}, Case{50, 2, 4, 33, 20}}) {
    const std::vector<int32_t> ids = router_like_ids(c.T, c.k, c.E, uint32_t(c.T * 7 + c.N));
    const int64_t P = c.T * c.k;
    std::vector<int32_t> off(static_cast<size_t>(c.E + 1)), tok(static_cast<size_t>(P)),
        idx(static_cast<size_t>(P)), act(static_cast<size_t>(c.E));
    cpu->moe_align(off.data(), tok.data(), idx.data(), act.data(), ids.data(), c.T, c.k, c.E);
    std::vector<std::vector<uint16_t>> w(static_cast<size_t>(c.E));
    std::vector<const void*> htable(static_cast<size_t>(c.E)), dtable(static_cast<size_t>(c.E));
    for (int64_t e = 0; e < c.E; ++e) {
      for (float v : randn(size_t(c.N * c.K), uint32_t(1000 + e), 0.1f))
        w[size_t(e)].push_back(f32_to_bf16(v));
      htable[size_t(e)] = w[size_t(e)].data();
      dtable[size_t(e)] = dev(w[size_t(e)]);
    }
    const std::vector<float> x = randn(size_t(P * c.K), 31);
    std::vector<float> want(static_cast<size_t>(P * c.N));
    cpu->moe_matmul(want.data(), x.data(), ExpertWeights{htable.data(), DType::BF16, c.N, c.K},
                    off.data(), act.data(), c.E, P, c.T);
    float* y = dev(std::vector<float>(want.size(), NAN));
    const ExpertWeights dw{reinterpret_cast<const void* const*>(dev(dtable)), DType::BF16, c.N,
                           c.K};
    gpu->moe_matmul(y, dev(x), dw, dev(off), dev(act), c.E, P, c.T);
    const char* path[] = {"gemv", "wmma", "plain"};
    std::printf("moe_matmul T=%lld E=%lld N=%lld K=%lld: %s\n", (long long)c.T, (long long)c.E,
                (long long)c.N, (long long)c.K, path[int(cuda::moe_matmul_path(dw, c.E, P))]);
    expect_close(host(y, want.size()), want, 1e-4f, 1e-4f, "moe_matmul");
  }
}

// The fused gate+up+silu gemv (decode) and the unfused path (prefill) against the CPU.
TEST_F(CudaOps, MoeSwigluMatchesCpu) {
  for (auto [T, k, E] : {std::tuple<int64_t, int64_t, int64_t>{1, 8, 128},
                         {2, 8, 128},
                         {4, 8, 128},
                         {64, 8, 128},
                         {512, 8, 128}}) {
    const int64_t I = 96, H = 256, P = T * k;
    const std::vector<int32_t> ids = router_like_ids(T, k, E, uint32_t(T * 3 + 1));
    std::vector<int32_t> off(static_cast<size_t>(E + 1)), tok(static_cast<size_t>(P)),
        idx(static_cast<size_t>(P)), act(static_cast<size_t>(E));
    cpu->moe_align(off.data(), tok.data(), idx.data(), act.data(), ids.data(), T, k, E);
    std::vector<uint16_t> g16, u16;
    for (float v : randn(size_t(E * I * H), 71, 0.1f)) g16.push_back(f32_to_bf16(v));
    for (float v : randn(size_t(E * I * H), 72, 0.1f)) u16.push_back(f32_to_bf16(v));
    const uint16_t* dg = dev(g16);
    const uint16_t* du = dev(u16);
    std::vector<const void*> hg, hu, tg, tu;
    for (int64_t e = 0; e < E; ++e) {
      hg.push_back(g16.data() + e * I * H);
      hu.push_back(u16.data() + e * I * H);
      tg.push_back(dg + e * I * H);
      tu.push_back(du + e * I * H);
    }
    const std::vector<float> x = randn(size_t(P * H), 73);
    std::vector<float> want(size_t(P * I)), gs(want.size()), us(want.size());
    cpu->moe_swiglu(want.data(), gs.data(), us.data(), x.data(),
                    ExpertWeights{hg.data(), DType::BF16, I, H},
                    ExpertWeights{hu.data(), DType::BF16, I, H}, off.data(), act.data(), E, P, T);
    float* y = dev(std::vector<float>(want.size(), NAN));
    float* s1 = dev(std::vector<float>(want.size()));
    float* s2 = dev(std::vector<float>(want.size()));
    gpu->moe_swiglu(y, s1, s2, dev(x),
                    ExpertWeights{reinterpret_cast<const void* const*>(dev(tg)), DType::BF16, I, H},
                    ExpertWeights{reinterpret_cast<const void* const*>(dev(tu)), DType::BF16, I, H},
                    dev(off), dev(act), E, P, T);
    expect_close(host(y, want.size()), want, 1e-4f, 1e-4f, "moe_swiglu");
  }
}

TEST_F(CudaOps, MoeCombineMatchesCpu) {
  const int64_t T = 70, k = 8, E = 128, D = 200;
  const std::vector<int32_t> ids = router_like_ids(T, k, E, 41);
  std::vector<int32_t> off(static_cast<size_t>(E + 1)), tok(static_cast<size_t>(T * k)),
      idx(static_cast<size_t>(T * k)), act(static_cast<size_t>(E));
  cpu->moe_align(off.data(), tok.data(), idx.data(), act.data(), ids.data(), T, k, E);
  idx[5] = -1;
  const std::vector<float> in = randn(size_t(T * k * D), 42), wts = randn(size_t(T * k), 43);
  std::vector<float> out = randn(size_t(T * D), 44);
  float* d_out = dev(out);
  cpu->moe_combine(out.data(), in.data(), idx.data(), wts.data(), T, k, D);
  gpu->moe_combine(d_out, dev(in), dev(idx), dev(wts), T, k, D);
  expect_close(host(d_out, out.size()), out, 1e-5f, 1e-5f, "moe_combine");
}

TEST_F(CudaOps, MoeCombineWriteAndUnweightedMatchCpu) {
  const int64_t T = 40, k = 4, D = 300;
  std::vector<int32_t> idx(size_t(T * k));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i % 7 == 3 ? -1 : int32_t((i * 13) % idx.size());
  for (int64_t j = 0; j < k; ++j) idx[size_t(5 * k + j)] = -1;  // a token without pairs
  const std::vector<float> in = randn(size_t(T * k * D), 51), wts = randn(size_t(T * k), 52);
  std::vector<float> out(size_t(T * D), NAN);
  float* d_out = dev(out);
  cpu->moe_combine(out.data(), in.data(), idx.data(), wts.data(), T, k, D, false);
  gpu->moe_combine(d_out, dev(in), dev(idx), dev(wts), T, k, D, false);
  expect_close(host(d_out, out.size()), out, 1e-5f, 1e-5f, "moe_combine accumulate=false");
  std::vector<float> sum(size_t(T * D), 0.25f);
  float* d_sum = dev(sum);
  cpu->moe_combine(sum.data(), in.data(), idx.data(), nullptr, T, k, D);
  gpu->moe_combine(d_sum, dev(in), dev(idx), nullptr, T, k, D);
  expect_close(host(d_sum, sum.size()), sum, 1e-5f, 1e-5f, "moe_combine weights=null");
}

// The dispatch index ops are integers and copies: the GPU must equal the CPU exactly, over
// more tokens than a warp walks at once and a plan with in-place, packed and empty peers.
TEST_F(CudaOps, MoeDispatchCountAndPackEqualCpu) {
  const int64_t T = 300, k = 8, E = 64, W = 4, rank = 2;
  std::vector<int32_t> ids = router_like_ids(T, k, E, 61);
  std::vector<int32_t> owner(static_cast<size_t>(E)), local(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    owner[size_t(e)] = int32_t(e % 3);  // rank 3 holds no expert: an empty peer
    local[size_t(e)] = int32_t(e / 3);
  }
  const std::vector<float> w = randn(size_t(T * k), 62);
  std::vector<int32_t> stats(size_t(3 * W));
  int32_t* d_ids = dev(ids);
  int32_t* d_owner = dev(owner);
  int32_t* d_stats = dev(stats);
  cpu->moe_dispatch_count(stats.data(), ids.data(), owner.data(), T, k, E, W);
  gpu->moe_dispatch_count(d_stats, d_ids, d_owner, T, k, E, W);
  ASSERT_EQ(host(d_stats, stats.size()), stats);

  // Peer 0 in place over its range, peer 1 packed, peer 3 packed with no rows.
  std::vector<int32_t> plan(size_t(4 * W), 0);
  const int32_t first0 = stats[size_t(W)], rows0 = stats[size_t(2 * W)] - first0 + 1;
  const int32_t packed1 = stats[1];
  plan[0] = first0, plan[1] = int32_t(T), plan[3] = int32_t(T + packed1);
  plan[size_t(W)] = rows0, plan[size_t(W + 1)] = packed1, plan[size_t(W + 2)] = int32_t(T);
  plan[size_t(2 * W + 1)] = rows0, plan[size_t(2 * W + 3)] = rows0 + packed1;
  plan[size_t(3 * W)] = 1000, plan[size_t(3 * W + 1)] = 1000 + rows0,
                  plan[size_t(3 * W + 3)] = 5000;
  const int64_t sent = rows0 + packed1, packed = packed1;
  std::vector<int32_t> pack_src(size_t(packed) + 1, -7), combine_rows(size_t(T * W), -7),
      send_meta(size_t(2 * sent * k), -7), own_ids(size_t((T + packed) * k), -7);
  std::vector<float> own_w(size_t(T * k), -7.0f);
  MoeDispatchPack c;
  c.tokens = T, c.k = k, c.experts = E, c.world = W, c.rank = rank, c.packed = packed;
  MoeDispatchPack g = c;
  c.ids = ids.data(), c.weights = w.data(), c.owner = owner.data(), c.local = local.data();
  c.plan = plan.data(), c.pack_src = pack_src.data(), c.combine_rows = combine_rows.data();
  c.send_meta = send_meta.data();
  c.own_ids = own_ids.data(), c.own_weights = own_w.data();
  g.ids = d_ids, g.weights = dev(w), g.owner = d_owner, g.local = dev(local), g.plan = dev(plan);
  g.pack_src = dev(pack_src), g.combine_rows = dev(combine_rows);
  g.send_meta = dev(send_meta);
  g.own_ids = dev(own_ids), g.own_weights = dev(own_w);
  cpu->moe_dispatch_pack(c);
  gpu->moe_dispatch_pack(g);
  EXPECT_EQ(host(g.pack_src, pack_src.size()), pack_src);
  EXPECT_EQ(host(g.combine_rows, combine_rows.size()), combine_rows);
  EXPECT_EQ(host(g.send_meta, send_meta.size()), send_meta);
  EXPECT_EQ(host(g.own_ids, own_ids.size()), own_ids);
  EXPECT_EQ(host(g.own_weights, own_w.size()), own_w);
}

// The fixed-capacity form: blocks of C rows, padding rows idle; T = 0 still writes them.
TEST_F(CudaOps, MoeDispatchPackFixedCapacityEqualsCpu) {
  const int64_t k = 8, E = 64, W = 4, rank = 1, C = 70;
  std::vector<int32_t> owner(static_cast<size_t>(E)), local(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    owner[size_t(e)] = int32_t(e % W);
    local[size_t(e)] = int32_t(e / W);
  }
  for (const int64_t T : {int64_t(37), int64_t(0), C}) {
    const int64_t n = std::max<int64_t>(T, 1);
    const std::vector<int32_t> ids = router_like_ids(n, k, E, 63);
    const std::vector<float> w = randn(size_t(n * k), 64);
    std::vector<int32_t> plan(size_t(4 * W), 0);
    for (int64_t p = 0, slot = 0; p < W; ++p) {
      if (p == rank) continue;
      plan[size_t(2 * W + p)] = int32_t(slot * C);
      plan[size_t(3 * W + p)] = int32_t(W * C + slot * C);
      ++slot;
    }
    std::vector<int32_t> combine_rows(size_t(n * W), -7),
        send_meta(size_t(2 * (W - 1) * C * k), -7), own_ids(size_t(C * k), -7);
    std::vector<float> own_w(size_t(n * k), -7.0f);
    MoeDispatchPack c;
    c.tokens = T, c.k = k, c.experts = E, c.world = W, c.rank = rank, c.packed = C - T;
    c.capacity = C;
    MoeDispatchPack g = c;
    c.ids = ids.data(), c.weights = w.data(), c.owner = owner.data(), c.local = local.data();
    c.plan = plan.data(), c.combine_rows = combine_rows.data(), c.send_meta = send_meta.data();
    c.own_ids = own_ids.data(), c.own_weights = own_w.data();
    g.ids = dev(ids), g.weights = dev(w), g.owner = dev(owner), g.local = dev(local);
    g.plan = dev(plan), g.combine_rows = dev(combine_rows), g.send_meta = dev(send_meta);
    g.own_ids = dev(own_ids), g.own_weights = dev(own_w);
    cpu->moe_dispatch_pack(c);
    gpu->moe_dispatch_pack(g);
    EXPECT_EQ(host(g.combine_rows, combine_rows.size()), combine_rows) << "T " << T;
    EXPECT_EQ(host(g.send_meta, send_meta.size()), send_meta) << "T " << T;
    EXPECT_EQ(host(g.own_ids, own_ids.size()), own_ids) << "T " << T;
    EXPECT_EQ(host(g.own_weights, own_w.size()), own_w) << "T " << T;
  }
}

TEST_F(CudaOps, Bf16PayloadEqualsCpu) {
  const int64_t n = 9, dim = 301;
  std::vector<float> in = randn(size_t(12 * dim), 71, 10.0f);
  in[5] = std::nanf("");  // NaN keeps its sign and payload, as the CPU encodes it
  in[7] = -std::nanf("");
  in[9] = INFINITY;
  in[11] = -0.0f;
  const std::vector<int32_t> idx = {11, 0, 5, 5, 2, 7, 1, 3, 9};
  std::vector<uint16_t> half(size_t(n * dim));
  std::vector<float> back(size_t(n * dim));
  cpu->rows_to_bf16(half.data(), in.data(), idx.data(), n, dim);
  cpu->rows_to_f32(back.data(), half.data(), n, dim);
  uint16_t* d_half = dev(std::vector<uint16_t>(half.size()));
  float* d_back = dev(std::vector<float>(back.size()));
  gpu->rows_to_bf16(d_half, dev(in), dev(idx), n, dim);
  gpu->rows_to_f32(d_back, d_half, n, dim);
  EXPECT_EQ(host(d_half, half.size()), half);
  const std::vector<float> got = host(d_back, back.size());
  ASSERT_EQ(std::memcmp(got.data(), back.data(), back.size() * sizeof(float)), 0) << "rows_to_f32";
}

TEST_F(CudaOps, FillRandomBitIdenticalToCpu) {
  const int64_t n = 3 * 1000 * 1000 + 7;
  for (DType dt : {DType::BF16, DType::F32}) {
    const size_t bytes = size_t(n) * dtype_size(dt);
    std::vector<uint8_t> want(bytes);
    cpu->fill_random(want.data(), dt, n, 1234, 0.25f, 0.05f);
    uint8_t* d = dev(std::vector<uint8_t>(bytes, 0xAB));
    gpu->fill_random(d, dt, n, 1234, 0.25f, 0.05f);
    EXPECT_TRUE(host(d, bytes) == want) << dtype_name(dt);
  }
}

// Few rows take the weight-streaming gemv, more the cuBLAS split path; both against the CPU at
// shapes whose N is no multiple of the block's 16 rows.
TEST_F(CudaOps, MatmulGemvRowsMatchCpu) {
  for (int64_t m : {1, 2, 5, 8, 9}) {
    const int64_t N = 150, K = 264;
    std::vector<uint16_t> w;
    for (float v : randn(size_t(N * K), 51, 0.1f)) w.push_back(f32_to_bf16(v));
    const std::vector<float> x = randn(size_t(m * K), 52), bias = randn(size_t(N), 53);
    Weight hw{w.data(), DType::BF16, N, K, K};
    std::vector<float> want(static_cast<size_t>(m * N));
    cpu->matmul(want.data(), x.data(), hw, m, bias.data());
    float* y = dev(std::vector<float>(want.size(), NAN));
    gpu->matmul(y, dev(x), gpu->map_weight(hw), m, dev(bias));
    expect_close(host(y, want.size()), want, 1e-4f, 1e-4f, "matmul (gemv rows)");
  }
}

// The whole forward through the CUDA backend against the float64 references (moe_fp8: its
// projections fp8 on the device, the reference on the dequantized weights).
TEST(CudaModel, FixtureParity) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  for (const char* name : {"moe_a", "dense_a", "moe_yarn", "moe_fp8"}) {
    const std::string dir = testing::fixture(std::string("hf-tiny/") + name);
    const ModelConfig config = ModelConfig::load(dir);
    const WeightStore ws = WeightStore::open(dir);
    auto backend = make_cuda_backend(0);
    // The hidden states are device memory: their collectives are device copies; the expert
    // dispatch and the logits stay on the host communicator.
    auto host_comm = make_local_communicator();
    auto comm = make_local_device_communicator(*backend);
    Topology topo(0, 1, 1,
                  {config.num_attention_heads, config.num_key_value_heads, config.num_experts,
                   config.vocab_size});
    Model model(config, ws, *backend, *comm, *host_comm, topo);
    KvCache cache(config, topo, *backend, 64, 16);
    const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
    for (int p = 0; p < 5; ++p) {
      const std::string key = "prompt_" + std::to_string(p);
      const auto tokens = testing::tensor_values<int32_t>(ref.get(key + ".tokens"));
      const auto expected = testing::tensor_values<float>(ref.get(key + ".logits"));
      const std::vector<float> got = prefill_logits(model, cache, tokens);
      float max_ref = 0, err = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        max_ref = std::max(max_ref, std::fabs(expected[i]));
        err = std::max(err, std::fabs(got[i] - expected[i]));
      }
      std::printf("cuda %s %s: max |err| %.3g (bound %.3g)\n", name, key.c_str(), double(err),
                  double(1e-3f * (1 + max_ref)));
      EXPECT_LE(err, 1e-3f * (1 + max_ref)) << name << " " << key;
    }
  }
}

// Decode steps replayed from CUDA graphs give the logits the eager steps give (same kernels,
// same inputs: equal to the bit), and the world-1 device MoE path agrees with the CPU backend.
TEST(CudaModel, GraphDecodeEqualsEagerAndCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  const std::string dir = testing::fixture("hf-tiny/moe_a");
  const ModelConfig config = ModelConfig::load(dir);
  const WeightStore ws = WeightStore::open(dir);
  auto comm = make_local_communicator();
  Topology topo(0, 1, 1,
                {config.num_attention_heads, config.num_key_value_heads, config.num_experts,
                 config.vocab_size});
  auto gpu = make_cuda_backend(0);
  auto cpu = make_cpu_backend(2);
  auto gpu_comm = make_local_device_communicator(*gpu);
  // Three runs of the same 3-sequence decode: cpu eager, cuda eager, cuda graphs.
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 3; ++run) {
    Backend& be = run == 0 ? *cpu : *gpu;
    Model model(config, ws, be, run == 0 ? *comm : *gpu_comm, *comm, topo);
    model.set_graphs(run == 2);
    KvCache cache(config, topo, be, 32, 16);
    std::vector<std::unique_ptr<SequenceKv>> seqs;
    for (int s = 0; s < 3; ++s) seqs.push_back(std::make_unique<SequenceKv>(cache));
    std::vector<float> all, logits;
    for (int step = 0; step < 6; ++step) {
      StepBatch b;
      b.max_blocks_per_seq = 4;  // fixed width: every step one graph shape
      for (int s = 0; s < 3; ++s) {
        std::vector<int32_t> slots;
        const int64_t pos = seqs[size_t(s)]->length();
        seqs[size_t(s)]->append(1, slots);
        b.tokens.push_back(int32_t((step * 7 + s * 13) % config.vocab_size));
        b.positions.push_back(int32_t(pos));
        b.token_seq.push_back(s);
        b.slots.push_back(slots[0]);
        b.logit_rows.push_back(s);
      }
      for (int s = 0; s < 3; ++s) {
        std::vector<int32_t> row = seqs[size_t(s)]->blocks();
        row.resize(4, 0);
        b.block_tables.insert(b.block_tables.end(), row.begin(), row.end());
      }
      model.forward(b, cache, logits);
      all.insert(all.end(), logits.begin(), logits.end());
    }
    runs.push_back(all);
  }
  ASSERT_EQ(runs[1].size(), runs[2].size());
  for (size_t i = 0; i < runs[1].size(); ++i)
    ASSERT_EQ(runs[1][i], runs[2][i]) << "graph replay differs from eager at " << i;
  float max_ref = 0, err = 0;
  for (size_t i = 0; i < runs[0].size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(runs[0][i]));
    err = std::max(err, std::fabs(runs[1][i] - runs[0][i]));
  }
  std::printf("cuda vs cpu decode logits: max |err| %.3g (bound %.3g)\n", double(err),
              double(1e-3f * (1 + max_ref)));
  EXPECT_LE(err, 1e-3f * (1 + max_ref));
}

// serve's graph settings on the GPU: the engine pads decode steps to graph shapes and the
// model replays captured graphs; every request's greedy tokens equal the eager engine's.
TEST(CudaModel, ServingEngineGraphsEqualEager) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  const std::string dir = testing::fixture("hf-tiny/moe_a");
  const ModelConfig config = ModelConfig::load(dir);
  const WeightStore ws = WeightStore::open(dir);
  auto comm = make_local_communicator();
  Topology topo(0, 1, 1,
                {config.num_attention_heads, config.num_key_value_heads, config.num_experts,
                 config.vocab_size});
  auto gpu = make_cuda_backend(0);
  auto gpu_comm = make_local_device_communicator(*gpu);
  std::map<int, std::vector<int32_t>> tokens[2];
  size_t shapes = 0;
  for (const bool graphs : {false, true}) {
    Model model(config, ws, *gpu, *gpu_comm, *comm, topo);
    model.set_graphs(graphs);
    KvCache cache(config, topo, *gpu, 64, 16);
    EngineOptions o;
    o.max_batch = 6;
    o.graph_padding = graphs;
    Engine e(model, cache, *comm, nullptr, o);
    std::map<int, std::string> finish;
    for (int r = 0; r < 6; ++r) {
      GenerationRequest req;
      for (int i = 0; i < 2 + 3 * r; ++i) req.prompt.push_back(int32_t((r * 29 + i * 7) % 512));
      req.max_new_tokens = 5 + 4 * r;
      req.sampling.temperature = 0;
      req.ignore_eos = true;
      auto& out = tokens[graphs][r];
      e.submit(std::move(req), [&out, &finish, r](const GenerationEvent& ev) {
        out.insert(out.end(), ev.token_ids.begin(), ev.token_ids.end());
        if (!ev.finish_reason.empty()) finish[r] = ev.finish_reason;
      });
    }
    for (int i = 0; i < 1000 && finish.size() < 6; ++i) e.step();
    ASSERT_EQ(finish.size(), 6u);
    if (graphs) shapes = model.graph_shapes();
  }
  for (int r = 0; r < 6; ++r) EXPECT_EQ(tokens[1][r], tokens[0][r]) << "request " << r;
  std::printf("serving with graphs: %zu step shapes\n", shapes);
}

// The profiler's marks on the CUDA stream (events): after end_step, spans hold the device time
// of their kernels, in order, without a synchronization per span.
TEST(CudaModel, ProfilerEventsTimeTheStream) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  auto gpu = make_cuda_backend(0);
  auto comm = make_local_communicator();
  A2aProfiler p(0, 1, 4, {true});
  p.set_device_clock(gpu.get());
  const int64_t n = int64_t(1) << 26;  // 256 MB: a fill that takes a measurable time
  void* buf = gpu->alloc(size_t(n) * 4);
  {
    ProfileSpan span(&p, "fill", 0);
    gpu->fill_random(buf, DType::F32, n, 1, 0.0f, 1.0f);
  }
  { ProfileSpan span(&p, "empty", 0); }
  EXPECT_TRUE(p.spans().empty());  // not resolved before the step ends
  p.end_step(*comm);
  ASSERT_EQ(p.spans().size(), 2u);
  const A2aSpan &fill = p.spans()[0], &empty = p.spans()[1];
  std::printf("fill of 256 MB: %.1f us on the stream; empty span %.1f us\n", fill.dur_us,
              empty.dur_us);
  EXPECT_GT(fill.dur_us, 10.0);
  EXPECT_LT(empty.dur_us, fill.dur_us);
  EXPECT_GE(empty.start_us, fill.start_us + fill.dur_us - 1.0);
  gpu->free(buf);
}

}  // namespace
}  // namespace qwen3moe
