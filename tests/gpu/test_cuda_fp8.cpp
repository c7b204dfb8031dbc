// The CUDA kernels on block-scaled fp8 weights (one byte a weight on the device) against their
// CPU twins (kernels/cpu/matmul.cpp): the dense gemv (decode) and fp8_matmul (wmma on exact bf16
// tiles of the codes, or the plain kernel), the experts' gemv, fused GLU and wmma, the fixture's
// float64 GEMM products, random fp8 made on the device, and a random fp8 model on both backends.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "cuda_op_test.h"
#include "kernels/backend.h"
#include "kernels/common/dtype.h"
#include "kernels/cuda/ops.h"
#include "model_fixture.h"
#include "parallel/comm/local_device_communicator.h"

namespace qwen3moe {
namespace {

using testing::CudaOps;
using testing::router_like_ids;

// A matrix as an fp8 checkpoint stores it: codes [N, K] and each block's amax / 448 as its
// scale, [ceil(N / br), ceil(K / bc)].
struct HostFp8 {
  int64_t N = 0, K = 0, br = 128, bc = 128;
  std::vector<uint8_t> codes;
  std::vector<float> scales;
  int64_t scale_ld() const { return (K + bc - 1) / bc; }
  // Rows [r0, r0 + rows) and columns [c0, c0 + cols) of it, as the loader slices a TP shard.
  Weight slice(int64_t r0, int64_t rows, int64_t c0, int64_t cols) const {
    Weight w{codes.data() + r0 * K + c0, DType::F8E4M3, rows, cols, K};
    w.scale = scales.data();
    w.block_rows = br;
    w.block_cols = bc;
    w.scale_ld = scale_ld();
    w.scale_row0 = r0;
    w.scale_col0 = c0;
    return w;
  }
  Weight whole() const { return slice(0, N, 0, K); }
};

HostFp8 quantize(const std::vector<float>& v, int64_t N, int64_t K) {
  HostFp8 q;
  q.N = N;
  q.K = K;
  q.scales.assign(size_t((N + q.br - 1) / q.br * q.scale_ld()), 0.0f);
  auto block = [&](int64_t r, int64_t c) -> float& {
    return q.scales[size_t(r / q.br * q.scale_ld() + c / q.bc)];
  };
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < K; ++c)
      block(r, c) = std::max(block(r, c), std::fabs(v[size_t(r * K + c)]));
  for (float& s : q.scales) s = s > 0 ? s / 448.0f : 1.0f;
  q.codes.resize(v.size());
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < K; ++c)
      q.codes[size_t(r * K + c)] = f32_to_fp8_e4m3(v[size_t(r * K + c)] / block(r, c));
  return q;
}

// Dense fp8 matmul at decode rows (gemv) and prefill rows (wmma, or plain where K % 16 != 0 or
// the slice's blocks do not start on a 32-column step), whole matrices and TP slices that start
// inside a block, with a bias; against the CPU's register kernel on the same host slice.
TEST_F(CudaOps, MatmulFp8MatchesCpu) {
  struct Case {
    int64_t N, K, r0, rows, c0, cols;
    const char* what;
  };
  for (const Case c : {Case{150, 272, 0, 150, 0, 272, "whole, 3 column blocks"},
                       Case{300, 384, 64, 150, 32, 224, "slice inside a block, wmma steps"},
                       Case{200, 272, 0, 200, 8, 256, "slice at column 8: plain prefill"},
                       Case{96, 136, 0, 96, 0, 136, "K % 16 == 8: plain everywhere"}}) {
    const HostFp8 q = quantize(randn(size_t(c.N * c.K), 61, 0.1f), c.N, c.K);
    const Weight hw = q.slice(c.r0, c.rows, c.c0, c.cols);
    const Weight dw = gpu->map_weight(hw);
    ASSERT_EQ(dw.dtype, DType::F8E4M3) << c.what;  // one byte a weight on the device
    for (int64_t m : {1, 2, 5, 8, 9, 64, 130}) {
      const std::vector<float> x = randn(size_t(m * c.cols), 62), bias = randn(size_t(c.rows), 63);
      std::vector<float> want(size_t(m * c.rows));
      cpu->matmul(want.data(), x.data(), hw, m, bias.data());
      float* y = dev(std::vector<float>(want.size(), NAN));
      gpu->matmul(y, dev(x), dw, m, dev(bias));
      std::printf("fp8 matmul %s, m=%lld: %s\n", c.what, (long long)m,
                  cuda::gemv_applies(dw, m) ? "gemv" : "fp8_matmul");
      expect_close(host(y, want.size()), want, 1e-4f, 1e-4f, c.what);
    }
  }
}

// fp8 experts: a table of codes and a table of scales per projection, on both backends.
struct Fp8Experts {
  std::vector<HostFp8> host;
  std::vector<const void*> hcodes, dcodes;
  std::vector<const float*> hscales, dscales;
  ExpertWeights cpu_view() const {
    return {hcodes.data(), DType::F8E4M3, host[0].N, host[0].K, hscales.data(), 128, 128};
  }
};

Fp8Experts make_experts(CudaOps& t, int64_t E, int64_t N, int64_t K, uint32_t seed) {
  Fp8Experts x;
  for (int64_t e = 0; e < E; ++e) {
    x.host.push_back(quantize(CudaOps::randn(size_t(N * K), seed + uint32_t(e), 0.1f), N, K));
    x.hcodes.push_back(x.host.back().codes.data());
    x.hscales.push_back(x.host.back().scales.data());
  }
  for (int64_t e = 0; e < E; ++e) {
    x.dcodes.push_back(t.dev(x.host[size_t(e)].codes));
    x.dscales.push_back(t.dev(x.host[size_t(e)].scales));
  }
  return x;
}

ExpertWeights device_view(CudaOps& t, const Fp8Experts& x) {
  ExpertWeights w = x.cpu_view();
  w.table = reinterpret_cast<const void* const*>(t.dev(x.dcodes));
  w.scales = reinterpret_cast<const float* const*>(t.dev(x.dscales));
  return w;
}

// The experts' grouped GEMM on fp8: gemv at 1..8 rows an expert and in chunks of 8 past that
// (12 rows each of 2 experts), wmma from 16, plain for K % 16 != 0; K = 192 and 208 end in a
// partial block.
TEST_F(CudaOps, MoeMatmulFp8MatchesCpu) {
  struct Case {
    int64_t T, k, E, N, K;
  };
  for (const Case c : {Case{1, 8, 128, 96, 256}, Case{2, 8, 64, 100, 192}, Case{4, 4, 16, 64, 128},
                       Case{12, 2, 2, 64, 128}, Case{64, 8, 32, 96, 208}, Case{300, 2, 8, 64, 96},
                       Case{50, 2, 4, 33, 24}}) {
    const std::vector<int32_t> ids = router_like_ids(c.T, c.k, c.E, uint32_t(c.T * 5 + c.N));
    const int64_t P = c.T * c.k;
    std::vector<int32_t> off(static_cast<size_t>(c.E + 1)), tok(static_cast<size_t>(P)),
        idx(static_cast<size_t>(P)), act(static_cast<size_t>(c.E));
    cpu->moe_align(off.data(), tok.data(), idx.data(), act.data(), ids.data(), c.T, c.k, c.E);
    const Fp8Experts w = make_experts(*this, c.E, c.N, c.K, 2000);
    const std::vector<float> x = randn(size_t(P * c.K), 41);
    std::vector<float> want(size_t(P * c.N));
    cpu->moe_matmul(want.data(), x.data(), w.cpu_view(), off.data(), act.data(), c.E, P, c.T);
    float* y = dev(std::vector<float>(want.size(), NAN));
    const ExpertWeights dw = device_view(*this, w);
    gpu->moe_matmul(y, dev(x), dw, dev(off), dev(act), c.E, P, c.T);
    const char* path[] = {"gemv", "wmma", "plain"};
    std::printf("fp8 moe_matmul T=%lld E=%lld N=%lld K=%lld: %s\n", (long long)c.T, (long long)c.E,
                (long long)c.N, (long long)c.K, path[int(cuda::moe_matmul_path(dw, c.E, P))]);
    expect_close(host(y, want.size()), want, 1e-4f, 1e-4f, "fp8 moe_matmul");
  }
}

// gate, up and silu in one gemv launch (decode) and the unfused wmma path (prefill), fp8.
TEST_F(CudaOps, MoeSwigluFp8MatchesCpu) {
  for (const int64_t T : {1, 2, 4, 64, 512}) {
    const int64_t k = 8, E = 64, I = 96, H = 256, P = T * k;
    const std::vector<int32_t> ids = router_like_ids(T, k, E, uint32_t(T * 3 + 2));
    std::vector<int32_t> off(static_cast<size_t>(E + 1)), tok(static_cast<size_t>(P)),
        idx(static_cast<size_t>(P)), act(static_cast<size_t>(E));
    cpu->moe_align(off.data(), tok.data(), idx.data(), act.data(), ids.data(), T, k, E);
    const Fp8Experts g = make_experts(*this, E, I, H, 3000), u = make_experts(*this, E, I, H, 4000);
    const std::vector<float> x = randn(size_t(P * H), 43);
    std::vector<float> want(size_t(P * I)), gs(want.size()), us(want.size());
    cpu->moe_swiglu(want.data(), gs.data(), us.data(), x.data(), g.cpu_view(), u.cpu_view(),
                    off.data(), act.data(), E, P, T);
    float* y = dev(std::vector<float>(want.size(), NAN));
    float* s1 = dev(std::vector<float>(want.size()));
    float* s2 = dev(std::vector<float>(want.size()));
    gpu->moe_swiglu(y, s1, s2, dev(x), device_view(*this, g), device_view(*this, u), dev(off),
                    dev(act), E, P, T);
    expect_close(host(y, want.size()), want, 1e-4f, 1e-4f, "fp8 moe_swiglu");
  }
}

// The fixture's float64 x · dequantized W^T (gemm.* keys of moe_fp8, six projections with
// partial blocks, 8 rows of x each) through the device: the rows three times over (24 rows:
// fp8_matmul's wmma), all 8 and the first 4 (gemv).
TEST_F(CudaOps, Fp8GemmMatchesTheFixtureProducts) {
  const qwen3moe::testing::Fp8Gemms gemms = qwen3moe::testing::fp8_gemms();
  ASSERT_EQ(gemms.cases.size(), 6u);
  for (const qwen3moe::testing::Fp8GemmCase& c : gemms.cases) {
    const std::string& module = c.module;
    const Weight& hw = c.weight;
    const Weight dw = gpu->map_weight(hw);
    std::vector<float> x = c.x, want = c.y;
    const int64_t m = c.m;
    float top = 0;
    for (float v : want) top = std::max(top, std::fabs(v));
    const size_t nx = x.size(), ny = want.size();
    for (int copy = 1; copy < 3; ++copy) {  // rows [m, 3m) repeat rows [0, m)
      x.insert(x.end(), x.begin(), x.begin() + int64_t(nx));
      want.insert(want.end(), want.begin(), want.begin() + int64_t(ny));
    }
    ASSERT_GT(3 * m, cuda::kGemvMaxRows);
    for (const int64_t rows : {3 * m, m, std::min<int64_t>(m, 4)}) {
      float* y = dev(std::vector<float>(size_t(rows * hw.rows), NAN));
      gpu->matmul(y, dev(x), dw, rows, nullptr);
      const std::vector<float> got = host(y, size_t(rows * hw.rows));
      float worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
      std::printf("fp8 %s, %lld rows: max |err| %.3g (bound %.3g)\n", module.c_str(),
                  (long long)rows, double(worst), double(1e-4f * (1 + top)));
      EXPECT_LE(worst, 1e-4f * (1 + top)) << module << " rows " << rows;
    }
  }
}

// Random fp8 weights made on the device are the CPU's codes, bit for bit.
TEST_F(CudaOps, FillRandomFp8BitIdenticalToCpu) {
  const int64_t n = 2 * 1000 * 1000 + 9;
  std::vector<uint8_t> want(static_cast<size_t>(n));
  cpu->fill_random(want.data(), DType::F8E4M3, n, 99, 0.0f, 258.7f);
  uint8_t* d = dev(std::vector<uint8_t>(size_t(n), 0xAB));
  gpu->fill_random(d, DType::F8E4M3, n, 99, 0.0f, 258.7f);
  EXPECT_TRUE(host(d, size_t(n)) == want);
}

// A random model of an fp8 config (what bench --random-weights makes of Qwen3-30B-A3B-FP8's
// shape, here moe_fp8's): the same weights on both backends, so the same logits within the
// parity bound.
TEST(CudaModelFp8, RandomFp8ModelMatchesCpu) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  const ModelConfig config = ModelConfig::load(qwen3moe::testing::fixture("hf-tiny/moe_fp8"));
  const Topology topo(0, 1, 1,
                      {config.num_attention_heads, config.num_key_value_heads, config.num_experts,
                       config.vocab_size});
  auto run = [&](Backend& backend, Communicator& comm, Communicator& host_comm) {
    Model model(config, RandomWeights{7}, backend, comm, host_comm, topo);
    KvCache cache(config, topo, backend, 8, 16);
    SequenceKv seq(cache);
    StepBatch b;
    std::vector<int32_t> slots;
    seq.append(9, slots);
    for (int i = 0; i < 9; ++i) {
      b.tokens.push_back(int32_t((i * 37 + 5) % config.vocab_size));
      b.positions.push_back(i);
      b.token_seq.push_back(0);
    }
    b.slots = slots;
    b.block_tables = seq.blocks();
    b.max_blocks_per_seq = int(seq.blocks().size());
    b.logit_rows = {0, 8};
    std::vector<float> logits;
    model.forward(b, cache, logits);
    return logits;
  };
  auto cpu = make_cpu_backend(2);
  auto cpu_comm = make_local_communicator();
  const std::vector<float> want = run(*cpu, *cpu_comm, *cpu_comm);
  auto gpu = make_cuda_backend(0);
  auto host_comm = make_local_communicator();
  auto dev_comm = make_local_device_communicator(*gpu);
  const std::vector<float> got = run(*gpu, *dev_comm, *host_comm);
  ASSERT_EQ(got.size(), want.size());
  float top = 0, worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    top = std::max(top, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  std::printf("random fp8 model, cuda vs cpu: max |diff| %.3g (bound %.3g)\n", double(worst),
              double(1e-3f * (1 + top)));
  EXPECT_LE(worst, 1e-3f * (1 + top));
}

}  // namespace
}  // namespace qwen3moe
