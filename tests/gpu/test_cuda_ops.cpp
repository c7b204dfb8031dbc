// Every CUDA op against its CPU twin (kernels/cpu) on the same inputs: floats within
// atol + rtol, integers (router ids) exact. And the fixture parity through the CUDA backend.
// Without a GPU every test reports SKIPPED with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/generate.h"
#include "core/kv_cache.h"
#include "core/model.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "model_fixture.h"

namespace qwen3moe {
namespace {

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
    gpu = make_cuda_backend(0);
    cpu = make_cpu_backend(2);
  }
  // Device copy of a host vector; freed at teardown.
  template <typename T>
  T* dev(const std::vector<T>& h) {
    void* p = gpu->alloc(h.size() * sizeof(T) + 4);
    gpu->upload(p, h.data(), h.size() * sizeof(T));
    owned.push_back(p);
    return static_cast<T*>(p);
  }
  template <typename T>
  std::vector<T> host(const T* d, size_t n) {
    std::vector<T> h(n);
    gpu->synchronize();
    gpu->download(h.data(), d, n * sizeof(T));
    return h;
  }
  void TearDown() override {
    if (gpu)
      for (void* p : owned) gpu->free(p);
  }
  static std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
  }
  static void expect_close(const std::vector<float>& got, const std::vector<float>& want,
                           float atol, float rtol, const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_LE(std::fabs(got[i] - want[i]), atol + rtol * std::fabs(want[i]))
          << what << " at " << i << ": " << got[i] << " vs " << want[i];
  }
  std::unique_ptr<Backend> gpu, cpu;
  std::vector<void*> owned;
};

TEST_F(CudaOps, MatmulBf16MatchesCpu) {
  for (int64_t m : {1, 3, 17, 64}) {
    const int64_t N = 96, K = 200;
    std::vector<float> wf = randn(size_t(N * K), 1, 0.1f), x = randn(size_t(m * K), 2);
    std::vector<uint16_t> w(wf.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(wf[i]);
    const std::vector<float> bias = randn(size_t(N), 3);
    Weight hw{w.data(), DType::BF16, N, K, K};
    std::vector<float> want(size_t(m * N));
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
  cpu->rope(r.data(), pos.data(), T, H, D, 1e6f);
  float* dr = dev(x);
  gpu->rope(dr, dev(pos), T, H, D, 1e6f);
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
    std::vector<int32_t> ids(size_t(T * k));
    std::vector<float> wts(size_t(T * k));
    cpu->router_topk(ids.data(), wts.data(), logits.data(), T, E, k, norm);
    int32_t* di = dev(std::vector<int32_t>(ids.size()));
    float* dw = dev(std::vector<float>(wts.size()));
    gpu->router_topk(di, dw, dev(logits), T, E, k, norm);
    EXPECT_EQ(host(di, ids.size()), ids) << "normalize " << norm;
    expect_close(host(dw, wts.size()), wts, 1e-6f, 1e-5f, "router weights");
  }
}

TEST_F(CudaOps, AttentionOverPagedCacheMatchesCpu) {
  const int64_t Hq = 8, Hkv = 2, D = 64, bs = 16, blocks = 12;
  const std::vector<float> kc = randn(size_t(blocks * bs * Hkv * D), 9),
                           vc = randn(size_t(blocks * bs * Hkv * D), 10);
  // Two sequences with scattered blocks; tokens at several positions of each.
  const std::vector<int32_t> tables = {5, 2, 9, 0, 11, 7, 1, 3};  // [2, 4]
  const std::vector<int32_t> pos = {0, 20, 63, 3, 47}, seq = {0, 0, 0, 1, 1};
  const std::vector<float> q = randn(size_t(5 * Hq * D), 11);
  AttentionBatch hb{5, pos.data(), seq.data(), tables.data(), 4, int(bs)};
  std::vector<float> want(q.size());
  cpu->attention(want.data(), q.data(), kc.data(), vc.data(), hb, Hq, Hkv, D, 0.125f);
  AttentionBatch db{5, dev(pos), dev(seq), dev(tables), 4, int(bs)};
  float* out = dev(std::vector<float>(q.size()));
  gpu->attention(out, dev(q), dev(kc), dev(vc), db, Hq, Hkv, D, 0.125f);
  expect_close(host(out, q.size()), want, 2e-5f, 1e-4f, "attention");
}

TEST_F(CudaOps, RowMovesMatchCpu) {
  const int64_t T = 6, H = 40;
  const std::vector<float> x = randn(size_t(T * (H + 4)), 12);
  const std::vector<int32_t> idx = {3, 0, 3, 5, 1};
  std::vector<float> g(size_t(5 * H));
  cpu->gather_rows(g.data(), x.data(), idx.data(), 5, H, H + 4);
  float* dg = dev(std::vector<float>(g.size()));
  gpu->gather_rows(dg, dev(x), dev(idx), 5, H, H + 4);
  expect_close(host(dg, g.size()), g, 0, 0, "gather_rows");

  const std::vector<float> scale = {0.5f, 1.0f, -2.0f, 0.25f, 3.0f};
  std::vector<float> acc(size_t(T * H), 1.0f);
  cpu->scatter_add_rows(acc.data(), g.data(), idx.data(), scale.data(), 5, H);
  float* da = dev(std::vector<float>(size_t(T * H), 1.0f));
  gpu->scatter_add_rows(da, dg, dev(idx), dev(scale), 5, H);
  expect_close(host(da, acc.size()), acc, 1e-6f, 1e-6f, "scatter_add_rows");
}

// The whole forward through the CUDA backend against the float64 references.
TEST(CudaModel, FixtureParity) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
  for (const char* name : {"moe_a", "dense_a"}) {
    const std::string dir = testing::fixture(std::string("hf-tiny/") + name);
    const ModelConfig config = ModelConfig::load(dir);
    const WeightStore ws = WeightStore::open(dir);
    auto backend = make_cuda_backend(0);
    auto comm = make_local_communicator();
    Topology topo(0, 1, 1, {config.num_attention_heads, config.num_key_value_heads,
                            config.num_experts, config.vocab_size});
    Model model(config, ws, *backend, *comm, topo);
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

}  // namespace
}  // namespace qwen3moe
