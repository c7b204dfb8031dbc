// The CUDA op tests' fixture: a GPU backend and its CPU twin, device copies of host vectors,
// random inputs and the comparison every op test uses. Without a GPU a test reports SKIPPED.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "kernels/backend.h"

namespace qwen3moe::testing {

// Public: the helpers of a test file (its own structs and functions) use them too.
class CudaOps : public ::testing::Test {
 public:
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

// T tokens' top-k expert ids as a router makes them: k distinct experts each, shuffled.
inline std::vector<int32_t> router_like_ids(int64_t T, int64_t k, int64_t E, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(T * k)), all(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) all[size_t(e)] = int32_t(e);
  for (int64_t t = 0; t < T; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    std::copy_n(all.begin(), k, ids.begin() + t * k);
  }
  return ids;
}

}  // namespace qwen3moe::testing
