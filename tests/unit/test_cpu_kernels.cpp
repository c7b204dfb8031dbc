// Every op of kernels/cpu/ops.h against a plain scalar float64 reference written here. Inputs
// are chosen so a wrong route fails loudly: memory the op must not read holds NaN, memory it
// must not write holds a sentinel, shapes have odd sizes that exercise every vector tail.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/ops.h"
#include "test_util.h"

namespace qwen3moe {
namespace {

using testing::all_close;
using testing::all_equal;

constexpr float kSentinel = 12345.0f;

// ---- weights in every stored dtype, with their exact values in double -----------------------

// A weight [rows, cols] stored with row stride ld starting at column col0 of its buffer; the
// columns outside the slice hold NaN, so reading them poisons the result.
struct TestWeight {
  std::vector<uint8_t> storage;
  std::vector<double> values;  // [rows, cols], the exact stored values
  Weight w;
};

// A random value exactly representable in dt, returned as its bit pattern (in the low bytes of
// a uint32) and as a double computed from sign, exponent and mantissa, independently of the
// project's conversion functions (which the kernels use).
void random_representable(DType dt, std::mt19937& rng, uint32_t* bits, double* value) {
  std::uniform_int_distribution<int> sign(0, 1), exp(-6, 1), any(0, 15);
  const int s = sign(rng), e = exp(rng);
  switch (dt) {
    case DType::BF16: {
      const uint32_t m = std::uniform_int_distribution<uint32_t>(0, 127)(rng);
      *bits = (uint32_t(s) << 15) | (uint32_t(e + 127) << 7) | m;
      *value = (s ? -1 : 1) * std::ldexp(1.0 + m / 128.0, e);
      return;
    }
    case DType::F16: {
      const uint32_t m = std::uniform_int_distribution<uint32_t>(0, 1023)(rng);
      if (any(rng) == 0) {  // now and then a subnormal, to cover that conversion path
        *bits = (uint32_t(s) << 15) | m;
        *value = (s ? -1 : 1) * std::ldexp(double(m) / 1024.0, -14);
        return;
      }
      *bits = (uint32_t(s) << 15) | (uint32_t(e + 15) << 10) | m;
      *value = (s ? -1 : 1) * std::ldexp(1.0 + m / 1024.0, e);
      return;
    }
    case DType::F32: {
      const float f = std::normal_distribution<float>(0.0f, 1.0f)(rng);
      std::memcpy(bits, &f, 4);
      *value = double(f);
      return;
    }
    default:
      FAIL() << "no test values for dtype " << dtype_name(dt);
  }
}

TestWeight make_weight(DType dt, int64_t rows, int64_t cols, int64_t ld, int64_t col0,
                       std::mt19937& rng) {
  const size_t esz = dtype_size(dt);
  TestWeight t;
  t.storage.resize(size_t(rows * ld) * esz);
  const uint32_t nan_bits = dt == DType::BF16 ? 0x7fc0u : dt == DType::F16 ? 0x7e00u : 0x7fc00000u;
  for (int64_t i = 0; i < rows * ld; ++i) std::memcpy(&t.storage[size_t(i) * esz], &nan_bits, esz);
  t.values.resize(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      uint32_t bits = 0;
      random_representable(dt, rng, &bits, &t.values[size_t(r * cols + c)]);
      std::memcpy(&t.storage[size_t(r * ld + col0 + c) * esz], &bits, esz);
    }
  }
  t.w.data = t.storage.data() + size_t(col0) * esz;
  t.w.dtype = dt;
  t.w.rows = rows;
  t.w.cols = cols;
  t.w.ld = ld;
  return t;
}

// A weight whose every element is NaN: for operands an op must not touch.
TestWeight nan_weight(DType dt, int64_t rows, int64_t cols) {
  std::mt19937 unused(0);
  TestWeight t = make_weight(dt, rows, 0, cols, 0, unused);  // no values: all NaN padding
  t.w.cols = cols;
  return t;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng, float stddev = 1.0f) {
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// ---- matmul ---------------------------------------------------------------------------------

using MatmulFn = void (*)(float*, const float*, const Weight&, int64_t, const float*);

// y = x · w^T (+ bias) in double, and sum |x·w| per element, which bounds f32 round-off.
void reference_matmul(const std::vector<float>& x, const TestWeight& t, int64_t m,
                      const float* bias, std::vector<double>& y, std::vector<double>& mag) {
  const int64_t N = t.w.rows, K = t.w.cols;
  y.assign(size_t(m * N), 0.0);
  mag.assign(size_t(m * N), 0.0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t n = 0; n < N; ++n) {
      double s = 0, a = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = double(x[size_t(i * K + k)]) * t.values[size_t(n * K + k)];
        s += p;
        a += std::fabs(p);
      }
      if (bias) {
        s += bias[n];
        a += std::fabs(bias[n]);
      }
      y[size_t(i * N + n)] = s;
      mag[size_t(i * N + n)] = a;
    }
  }
}

// f32 accumulation of K products: error well under 1e-5 of the magnitude sum.
::testing::AssertionResult matmul_close(const std::vector<float>& got,
                                        const std::vector<double>& ref,
                                        const std::vector<double>& mag, int64_t m, int64_t n) {
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(double(got[i]) - ref[i]);
    if (!(err <= 1e-6 + 1e-5 * mag[i]))
      return ::testing::AssertionFailure() << "y[" << i / size_t(n) << ", " << i % size_t(n)
                                           << "] = " << got[i] << ", expected " << ref[i];
  }
  for (size_t i = ref.size(); i < got.size(); ++i)
    if (got[i] != kSentinel)
      return ::testing::AssertionFailure() << "wrote past y[" << m << ", " << n << "]";
  return ::testing::AssertionSuccess();
}

struct MatmulAlgo {
  const char* name;
  MatmulFn fn;
};

TEST(CpuMatmul, AllAlgorithmsDtypesShapesSlicesAndBias) {
  const MatmulAlgo algos[] = {
      {"own", &cpu::matmul_own}, {"blas", &cpu::matmul_blas}, {"dispatch", &cpu::matmul}};
  const DType dtypes[] = {DType::BF16, DType::F16, DType::F32};
  const int64_t ms[] = {1, 2, 3, 4, 5, 17, 64};
  // (N, K): odd N and K not multiples of 8; K < 8 leaves only the scalar tail.
  const std::pair<int64_t, int64_t> shapes[] = {{37, 67}, {131, 5}, {9, 19}};
  std::mt19937 rng(1234);
  for (DType dt : dtypes) {
    for (auto [N, K] : shapes) {
      for (bool sliced : {false, true}) {
        // A column slice: the weight starts at column 3 of a matrix 3 + K + 10 wide.
        const int64_t ld = sliced ? K + 13 : K, col0 = sliced ? 3 : 0;
        const TestWeight t = make_weight(dt, N, K, ld, col0, rng);
        const std::vector<float> bias = random_floats(size_t(N), rng);
        for (int64_t m : ms) {
          const std::vector<float> x = random_floats(size_t(m * K), rng);
          for (bool with_bias : {false, true}) {
            std::vector<double> ref, mag;
            reference_matmul(x, t, m, with_bias ? bias.data() : nullptr, ref, mag);
            for (const MatmulAlgo& a : algos) {
              SCOPED_TRACE(::testing::Message()
                           << a.name << " " << dtype_name(dt) << " M=" << m << " N=" << N
                           << " K=" << K << " ld=" << ld << (with_bias ? " bias" : ""));
              std::vector<float> y(size_t(m * N) + 8, kSentinel);
              std::fill(y.begin(), y.begin() + m * N, NAN);  // every element must be written
              a.fn(y.data(), x.data(), t.w, m, with_bias ? bias.data() : nullptr);
              EXPECT_TRUE(matmul_close(y, ref, mag, m, N));
            }
          }
        }
      }
    }
  }
}

TEST(CpuMatmul, GemmPathSplitsAtFortyEightRows) {
  // Decode-sized batches take the own kernel, prefill-sized ones sgemm (matmul.cpp: the
  // crossover measured with bench --gemm lies between 32 and 64 rows).
  EXPECT_EQ(cpu::gemm_path(1), cpu::GemmPath::kOwn);
  EXPECT_EQ(cpu::gemm_path(47), cpu::GemmPath::kOwn);
  EXPECT_EQ(cpu::gemm_path(48), cpu::GemmPath::kBlas);
  EXPECT_EQ(cpu::gemm_path(512), cpu::GemmPath::kBlas);
}

TEST(CpuMatmul, ZeroRowsWritesNothing) {
  std::mt19937 rng(5);
  const TestWeight t = make_weight(DType::BF16, 7, 9, 9, 0, rng);
  std::vector<float> y(8, kSentinel);
  const std::vector<float> x(9, 1.0f);
  cpu::matmul(y.data(), x.data(), t.w, 0, nullptr);
  EXPECT_TRUE(all_equal(y, std::vector<float>(8, kSentinel)));
}

TEST(CpuMatmul, GroupedMatmulWithEmptyGroups) {
  std::mt19937 rng(99);
  const int64_t N = 19, K = 45;
  // Groups 0, 2 and 5 are empty; their weights are all NaN so using one shows. Group 3 has 17
  // rows (the sgemm path), the others decode-sized (the own kernel). Mixed dtypes.
  const std::vector<int64_t> offsets = {0, 0, 3, 3, 20, 21, 21};
  const DType dts[] = {DType::BF16, DType::F32, DType::F16, DType::BF16, DType::F16, DType::F32};
  std::vector<TestWeight> ws;
  std::vector<Weight> w;
  for (int g = 0; g < 6; ++g) {
    const bool empty = offsets[size_t(g) + 1] == offsets[size_t(g)];
    ws.push_back(empty ? nan_weight(dts[g], N, K) : make_weight(dts[g], N, K, K, 0, rng));
    w.push_back(ws.back().w);
  }
  const int64_t rows = offsets.back();
  const std::vector<float> x = random_floats(size_t(rows * K), rng);
  std::vector<float> y(size_t(rows * N) + 8, kSentinel);
  std::fill(y.begin(), y.begin() + rows * N, NAN);
  cpu::grouped_matmul(y.data(), x.data(), w.data(), offsets.data(), 6);
  std::vector<double> ref(size_t(rows * N)), mag(size_t(rows * N));
  for (int g = 0; g < 6; ++g) {
    const int64_t r0 = offsets[size_t(g)], rn = offsets[size_t(g) + 1] - r0;
    if (rn == 0) continue;
    std::vector<float> xg(x.begin() + r0 * K, x.begin() + (r0 + rn) * K);
    std::vector<double> yg, mg;
    reference_matmul(xg, ws[size_t(g)], rn, nullptr, yg, mg);
    std::copy(yg.begin(), yg.end(), ref.begin() + r0 * N);
    std::copy(mg.begin(), mg.end(), mag.begin() + r0 * N);
  }
  EXPECT_TRUE(matmul_close(y, ref, mag, rows, N));

  // All groups empty: nothing is written.
  const std::vector<int64_t> none = {0, 0, 0, 0, 0, 0, 0};
  std::vector<float> untouched(16, kSentinel);
  cpu::grouped_matmul(untouched.data(), x.data(), w.data(), none.data(), 6);
  EXPECT_TRUE(all_equal(untouched, std::vector<float>(16, kSentinel)));
}

// ---- rmsnorm --------------------------------------------------------------------------------

std::vector<double> reference_rmsnorm(const std::vector<float>& x, const std::vector<float>& w,
                                      int64_t rows, int64_t dim, double eps) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(x[size_t(r * dim + i)]) * x[size_t(r * dim + i)];
    const double inv = 1.0 / std::sqrt(ss / double(dim) + eps);
    for (int64_t i = 0; i < dim; ++i)
      y[size_t(r * dim + i)] = double(w[size_t(i)]) * x[size_t(r * dim + i)] * inv;
  }
  return y;
}

TEST(CpuRmsnorm, MatchesReferenceOutOfPlaceAndInPlace) {
  std::mt19937 rng(7);
  // 300 x 128 crosses the OpenMP threshold; 5 x 67 and 3 x 1 do not.
  for (auto [rows, dim] : {std::pair<int64_t, int64_t>{5, 67}, {3, 1}, {300, 128}}) {
    for (float eps : {1e-6f, 0.5f}) {
      SCOPED_TRACE(::testing::Message() << rows << "x" << dim << " eps " << eps);
      std::vector<float> x = random_floats(size_t(rows * dim), rng, 30.0f);
      const std::vector<float> w = random_floats(size_t(dim), rng);
      const std::vector<double> ref = reference_rmsnorm(x, w, rows, dim, eps);
      std::vector<float> y(x.size(), NAN);
      cpu::rmsnorm(y.data(), x.data(), w.data(), rows, dim, eps);
      EXPECT_TRUE(all_close(y, ref, 1e-6, 1e-6));
      cpu::rmsnorm(x.data(), x.data(), w.data(), rows, dim, eps);  // the model runs it in place
      EXPECT_TRUE(all_close(x, ref, 1e-6, 1e-6));
    }
  }
}

// ---- rope -----------------------------------------------------------------------------------

// Rotate-half RoPE directly from its definition: pairs (i, i + d/2) rotated by pos·θ^(-2i/d).
// f32_angle: the angle as Hugging Face forms it (f32 inv_freq times f32 position, rounded to
// f32), which is what matters at large positions; otherwise the exact angle.
std::vector<double> reference_rope(const std::vector<float>& x, const std::vector<int32_t>& pos,
                                   int64_t heads, int64_t d, double theta, bool f32_angle) {
  std::vector<double> y(x.begin(), x.end());
  const int64_t half = d / 2;
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < half; ++i) {
        const double inv_freq = std::pow(theta, -2.0 * double(i) / double(d));
        const double angle =
            f32_angle ? double(float(pos[t]) * float(inv_freq)) : double(pos[t]) * inv_freq;
        const size_t a = (t * size_t(heads) + size_t(h)) * size_t(d) + size_t(i);
        const double x1 = x[a], x2 = x[a + size_t(half)];
        y[a] = x1 * std::cos(angle) - x2 * std::sin(angle);
        y[a + size_t(half)] = x2 * std::cos(angle) + x1 * std::sin(angle);
      }
    }
  }
  return y;
}

// theta^(-2i/d) in f32, the plain-RoPE table (core/model/rope_table.h builds the model's).
std::vector<float> plain_inv_freq(double theta, int64_t d) {
  std::vector<float> f(size_t(d / 2));
  for (int64_t i = 0; i < d / 2; ++i)
    f[size_t(i)] = float(1.0 / std::pow(theta, double(2 * i) / double(d)));
  return f;
}

TEST(CpuRope, MatchesRotateHalfAtSmallPositions) {
  std::mt19937 rng(11);
  const int64_t heads = 3, d = 10;
  const std::vector<int32_t> pos = {0, 1, 2, 17, 63};
  for (double theta : {10000.0, 1e6}) {
    std::vector<float> x = random_floats(pos.size() * size_t(heads * d), rng);
    const std::vector<float> before = x;
    const std::vector<double> ref = reference_rope(x, pos, heads, d, theta, false);
    const std::vector<float> inv_freq = plain_inv_freq(theta, d);
    cpu::rope(x.data(), pos.data(), int64_t(pos.size()), heads, d, inv_freq.data(), 1.0f);
    // The f32 angle differs from the exact one by at most 63 · 2^-24 here.
    EXPECT_TRUE(all_close(x, ref, 1e-5, 1e-6)) << "theta " << theta;
    // Position 0 is the identity, bit for bit.
    for (int64_t i = 0; i < heads * d; ++i) EXPECT_EQ(x[size_t(i)], before[size_t(i)]);
  }
}

TEST(CpuRope, LargePositionsUseHuggingFaceF32Angle) {
  std::mt19937 rng(12);
  const int64_t heads = 2, d = 64;
  // Several tokens per thread chunk and enough work for the OpenMP path.
  std::vector<int32_t> pos;
  for (int i = 0; i < 300; ++i) pos.push_back(int32_t(i * 331 % 40960));
  std::vector<float> x = random_floats(pos.size() * size_t(heads * d), rng);
  const std::vector<double> ref = reference_rope(x, pos, heads, d, 1e6, true);
  const std::vector<float> inv_freq = plain_inv_freq(1e6, d);
  cpu::rope(x.data(), pos.data(), int64_t(pos.size()), heads, d, inv_freq.data(), 1.0f);
  EXPECT_TRUE(all_close(x, ref, 1e-5, 1e-5));
}

// The table's scale (YaRN's attention factor) multiplies both cos and sin, and the table's
// frequencies are the ones used: a doubled frequency is the rotation of twice the position.
TEST(CpuRope, TableFrequenciesAndScale) {
  std::mt19937 rng(14);
  const int64_t heads = 2, d = 16;
  const std::vector<int32_t> pos = {3, 10}, twice = {6, 20};
  const std::vector<float> x = random_floats(pos.size() * size_t(heads * d), rng);
  std::vector<float> inv = plain_inv_freq(1e4, d), doubled = inv;
  for (float& f : doubled) f *= 2;
  std::vector<float> a = x, b = x, scaled = x;
  cpu::rope(a.data(), twice.data(), 2, heads, d, inv.data(), 1.0f);
  cpu::rope(b.data(), pos.data(), 2, heads, d, doubled.data(), 1.0f);
  cpu::rope(scaled.data(), twice.data(), 2, heads, d, inv.data(), 1.25f);
  EXPECT_TRUE(all_close(b, std::vector<double>(a.begin(), a.end()), 1e-5, 1e-5));
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(scaled[i], 1.25f * a[i], 1e-5f) << i;
}

// f32 K and V buffers as the kernels' KvCacheView.
KvCacheView f32_cache(const std::vector<float>& k, const std::vector<float>& v) {
  return {const_cast<float*>(k.data()), const_cast<float*>(v.data())};
}

// ---- kv cache write -------------------------------------------------------------------------

TEST(CpuKvCacheWrite, WritesExactlyTheGivenSlots) {
  std::mt19937 rng(13);
  const int64_t kv_dim = 12, slots_total = 24;
  const std::vector<int32_t> slots = {5, 0, 17, 3, 23};
  const std::vector<float> k = random_floats(slots.size() * size_t(kv_dim), rng);
  const std::vector<float> v = random_floats(slots.size() * size_t(kv_dim), rng);
  std::vector<float> kc(size_t(slots_total * kv_dim), kSentinel), vc = kc;
  cpu::kv_cache_write(f32_cache(kc, vc), k.data(), v.data(), slots.data(), int64_t(slots.size()),
                      kv_dim, kv_dim);
  std::vector<float> want_k(kc.size(), kSentinel), want_v = want_k;
  for (size_t t = 0; t < slots.size(); ++t) {
    for (int64_t j = 0; j < kv_dim; ++j) {
      want_k[size_t(slots[t] * kv_dim + j)] = k[t * size_t(kv_dim) + size_t(j)];
      want_v[size_t(slots[t] * kv_dim + j)] = v[t * size_t(kv_dim) + size_t(j)];
    }
  }
  EXPECT_TRUE(all_equal(kc, want_k));
  EXPECT_TRUE(all_equal(vc, want_v));
}

TEST(CpuKvCacheWrite, NegativeSlotIsAnError) {
  std::vector<float> kc(16), vc(16), k(8, 1.0f), v(8, 1.0f);
  const std::vector<int32_t> slots = {1, -1};
  const std::string msg = testing::error_of(
      [&] { cpu::kv_cache_write(f32_cache(kc, vc), k.data(), v.data(), slots.data(), 2, 4, 4); });
  EXPECT_ERROR_NAMES(msg, "negative slot -1");
}

// A graph bucket's padding tokens (kPaddingSlot) leave the cache as it was.
TEST(CpuKvCacheWrite, PaddingSlotWritesNothing) {
  std::vector<float> kc(16, kSentinel), vc(16, kSentinel), k(12, 1.0f), v(12, 2.0f);
  const std::vector<int32_t> slots = {kPaddingSlot, 2, kPaddingSlot};
  cpu::kv_cache_write(f32_cache(kc, vc), k.data(), v.data(), slots.data(), 3, 4, 4);
  for (size_t i = 0; i < kc.size(); ++i) {
    const bool written = i >= 8 && i < 12;
    EXPECT_EQ(kc[i], written ? 1.0f : kSentinel) << i;
    EXPECT_EQ(vc[i], written ? 2.0f : kSentinel) << i;
  }
}

// ---- attention ------------------------------------------------------------------------------

// Paged caches for several sequences with non-contiguous blocks; every slot no sequence owns
// holds NaN, so attending to a wrong slot poisons the output.
struct PagedCase {
  int64_t q_heads = 6, kv_heads = 2, d = 16, bs = 4, num_blocks = 9, max_blocks = 3;
  std::vector<std::vector<int32_t>> blocks = {{7, 2, 5}, {1, 6}, {3}, {8, 4}};
  std::vector<int64_t> lengths = {10, 7, 1, 8};  // 10 and 7 do not fill their last block
  std::vector<std::vector<float>> k, v;          // per sequence [len, kv_heads*d]
  std::vector<float> k_cache, v_cache;
  std::vector<int32_t> tables;

  explicit PagedCase(std::mt19937& rng) {
    const int64_t kv_dim = kv_heads * d;
    k_cache.assign(size_t(num_blocks * bs * kv_dim), NAN);
    v_cache = k_cache;
    tables.assign(blocks.size() * size_t(max_blocks), 0);  // block 0 is nobody's: NaN
    for (size_t s = 0; s < blocks.size(); ++s) {
      for (size_t b = 0; b < blocks[s].size(); ++b)
        tables[s * size_t(max_blocks) + b] = blocks[s][b];
      k.push_back(random_floats(size_t(lengths[s] * kv_dim), rng));
      v.push_back(random_floats(size_t(lengths[s] * kv_dim), rng));
      for (int64_t p = 0; p < lengths[s]; ++p) {
        const int64_t slot = blocks[s][size_t(p / bs)] * bs + p % bs;
        std::copy_n(&k[s][size_t(p * kv_dim)], kv_dim, &k_cache[size_t(slot * kv_dim)]);
        std::copy_n(&v[s][size_t(p * kv_dim)], kv_dim, &v_cache[size_t(slot * kv_dim)]);
      }
    }
  }

  std::vector<double> reference(const std::vector<float>& q, const std::vector<int32_t>& seq,
                                const std::vector<int32_t>& pos, double scale) const {
    const int64_t group = q_heads / kv_heads, kv_dim = kv_heads * d;
    std::vector<double> out(q.size(), 0.0);
    for (size_t t = 0; t < seq.size(); ++t) {
      const auto& ks = k[size_t(seq[t])];
      const auto& vs = v[size_t(seq[t])];
      for (int64_t h = 0; h < q_heads; ++h) {
        const int64_t kvh = h / group;
        const float* qv = &q[(t * size_t(q_heads) + size_t(h)) * size_t(d)];
        std::vector<double> s(size_t(pos[t]) + 1);
        double mx = -INFINITY;
        for (int64_t p = 0; p <= pos[t]; ++p) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i)
            dot += double(qv[i]) * ks[size_t(p * kv_dim + kvh * d + i)];
          s[size_t(p)] = dot * scale;
          mx = std::max(mx, s[size_t(p)]);
        }
        double sum = 0;
        for (double& e : s) sum += (e = std::exp(e - mx));
        double* o = &out[(t * size_t(q_heads) + size_t(h)) * size_t(d)];
        for (int64_t p = 0; p <= pos[t]; ++p)
          for (int64_t i = 0; i < d; ++i)
            o[i] += s[size_t(p)] / sum * vs[size_t(p * kv_dim + kvh * d + i)];
      }
    }
    return out;
  }
};

TEST(CpuAttention, SeveralSequencesGqaPagedNonContiguousBlocks) {
  std::mt19937 rng(17);
  const PagedCase c(rng);
  // Query tokens: a decode token of sequence 1, the whole prefill of sequence 0, the single
  // token of sequence 2, and a middle position of sequence 3, interleaved.
  std::vector<int32_t> seq = {1}, pos = {6};
  for (int32_t p = 0; p < 10; ++p) seq.push_back(0), pos.push_back(p);
  seq.push_back(2), pos.push_back(0);
  seq.push_back(3), pos.push_back(5);
  const int64_t T = int64_t(seq.size());
  const std::vector<float> q = random_floats(size_t(T * c.q_heads * c.d), rng);
  AttentionBatch b;
  b.num_tokens = int(T);
  b.positions = pos.data();
  b.token_seq = seq.data();
  b.block_tables = c.tables.data();
  b.max_blocks_per_seq = int(c.max_blocks);
  b.block_size = int(c.bs);
  for (float scale : {0.25f, 0.37f}) {  // 1/sqrt(16), and one that is no such thing
    std::vector<float> out(q.size(), NAN);
    cpu::attention(out.data(), q.data(), f32_cache(c.k_cache, c.v_cache), b, c.q_heads, c.kv_heads,
                   c.d, scale);
    EXPECT_TRUE(all_close(out, c.reference(q, seq, pos, scale), 1e-5, 1e-5)) << "scale " << scale;
  }
}

// A bf16 or fp8 cache (written by kv_cache_write, fp8 with per-head scales) gives exactly the
// attention of the f32 cache holding the same rounded values: rows are widened as read.
TEST(CpuAttention, ReducedPrecisionCacheEqualsItsWidenedValues) {
  std::mt19937 rng(19);
  const PagedCase c(rng);
  const int64_t kv_dim = c.kv_heads * c.d, slots = c.num_blocks * c.bs;
  std::vector<int32_t> all(static_cast<size_t>(slots));
  for (int64_t i = 0; i < slots; ++i) all[size_t(i)] = int32_t(i);
  std::vector<float> k(size_t(slots * kv_dim)), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = std::isnan(c.k_cache[i]) ? 0.0f : c.k_cache[i];
    v[i] = std::isnan(c.v_cache[i]) ? 0.0f : c.v_cache[i];
  }
  const std::vector<float> scales = {0.5f, 0.03125f};
  const std::vector<int32_t> seq = {0, 0, 1, 3}, pos = {9, 3, 6, 7};
  const std::vector<float> q = random_floats(seq.size() * size_t(c.q_heads * c.d), rng);
  AttentionBatch b{4, pos.data(), seq.data(), c.tables.data(), int(c.max_blocks), int(c.bs)};
  for (const DType dt : {DType::BF16, DType::F8E4M3}) {
    std::vector<uint8_t> kc(k.size() * dtype_size(dt)), vc(kc.size());
    const KvCacheView view{kc.data(), vc.data(), dt, scales.data(), scales.data()};
    cpu::kv_cache_write(view, k.data(), v.data(), all.data(), slots, kv_dim, c.d);
    std::vector<float> kw(k.size()), vw(v.size());
    for (size_t i = 0; i < k.size(); ++i) {
      const float sc = scales[(i % size_t(kv_dim)) / size_t(c.d)];
      kw[i] = dt == DType::BF16 ? bf16_to_f32(reinterpret_cast<uint16_t*>(kc.data())[i])
                                : fp8_e4m3_to_f32(kc[i]) * sc;
      vw[i] = dt == DType::BF16 ? bf16_to_f32(reinterpret_cast<uint16_t*>(vc.data())[i])
                                : fp8_e4m3_to_f32(vc[i]) * sc;
      // The stored value is the nearest: within half a step of the original.
      ASSERT_LE(std::fabs(kw[i] - k[i]), (dt == DType::BF16 ? 4e-3f : 7e-2f) * std::fabs(k[i]) +
                                             (dt == DType::BF16 ? 0.0f : sc * 0x1p-10f))
          << dtype_name(dt) << " " << i;
    }
    std::vector<float> got(q.size()), want(q.size());
    cpu::attention(got.data(), q.data(), view, b, c.q_heads, c.kv_heads, c.d, 0.25f);
    cpu::attention(want.data(), q.data(), f32_cache(kw, vw), b, c.q_heads, c.kv_heads, c.d, 0.25f);
    EXPECT_TRUE(all_equal(got, want)) << dtype_name(dt);
  }
}

TEST(CpuAttention, SinglePositionReturnsItsValue) {
  std::mt19937 rng(18);
  const PagedCase c(rng);
  const std::vector<int32_t> seq = {2}, pos = {0};
  const std::vector<float> q = random_floats(size_t(c.q_heads * c.d), rng);
  AttentionBatch b{1, pos.data(), seq.data(), c.tables.data(), int(c.max_blocks), int(c.bs)};
  std::vector<float> out(q.size(), NAN);
  cpu::attention(out.data(), q.data(), f32_cache(c.k_cache, c.v_cache), b, c.q_heads, c.kv_heads,
                 c.d, 0.25f);
  // Softmax over one position is 1: each q head copies its kv head's value row.
  for (int64_t h = 0; h < c.q_heads; ++h)
    for (int64_t i = 0; i < c.d; ++i)
      EXPECT_FLOAT_EQ(out[size_t(h * c.d + i)], c.v[2][size_t((h / 3) * c.d + i)]) << h << "," << i;
}

// ---- silu_mul, add --------------------------------------------------------------------------

TEST(CpuElementwise, SiluMulMatchesReference) {
  std::mt19937 rng(19);
  for (auto [rows, dim] :
       {std::pair<int64_t, int64_t>{3, 13}, {10, 7001}}) {  // 70010 > OpenMP threshold
    std::vector<float> g = random_floats(size_t(rows * dim), rng, 6.0f);
    const std::vector<float> u = random_floats(size_t(rows * dim), rng);
    g[0] = -100.0f;  // exp(100) overflows f32: silu must still give -0, not NaN
    g[1] = 100.0f;
    g[2] = 0.0f;
    std::vector<double> ref(g.size());
    for (size_t i = 0; i < g.size(); ++i)
      ref[i] = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
    std::vector<float> out(g.size(), NAN);
    cpu::silu_mul(out.data(), g.data(), u.data(), rows, dim);
    EXPECT_TRUE(all_close(out, ref, 1e-6, 1e-5)) << rows << "x" << dim;
  }
}

TEST(CpuElementwise, AddIsElementwiseSum) {
  std::mt19937 rng(20);
  for (int64_t n : {int64_t(1), int64_t(13), int64_t(70001)}) {
    std::vector<float> y = random_floats(size_t(n), rng);
    const std::vector<float> x = random_floats(size_t(n), rng);
    std::vector<float> want(y.size());
    // Two floats of similar size sum exactly in double, so rounding that to f32 is the
    // correctly rounded f32 sum: the result must match bit for bit.
    for (size_t i = 0; i < y.size(); ++i) want[i] = float(double(y[i]) + double(x[i]));
    cpu::add(y.data(), x.data(), n);
    EXPECT_TRUE(all_equal(y, want)) << "n=" << n;
  }
}

// ---- router ---------------------------------------------------------------------------------

void reference_router(const std::vector<float>& logits, int64_t T, int64_t E, int64_t k,
                      bool normalize, std::vector<int32_t>& ids, std::vector<double>& w) {
  ids.clear();
  w.clear();
  for (int64_t t = 0; t < T; ++t) {
    const float* l = &logits[size_t(t * E)];
    double mx = -INFINITY, sum = 0;
    for (int64_t e = 0; e < E; ++e) mx = std::max(mx, double(l[e]));
    std::vector<double> p(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) sum += (p[size_t(e)] = std::exp(double(l[e]) - mx));
    for (double& x : p) x /= sum;
    // Selection: repeatedly the largest remaining; a strict > keeps the lower id on ties.
    std::vector<bool> taken(static_cast<size_t>(E), false);
    double top = 0;
    std::vector<int32_t> chosen;
    for (int64_t j = 0; j < k; ++j) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e)
        if (!taken[size_t(e)] && (best < 0 || p[size_t(e)] > p[size_t(best)])) best = e;
      taken[size_t(best)] = true;
      chosen.push_back(int32_t(best));
      top += p[size_t(best)];
    }
    for (int32_t e : chosen) {
      ids.push_back(e);
      w.push_back(normalize ? p[size_t(e)] / top : p[size_t(e)]);
    }
  }
}

void check_router(const std::vector<float>& logits, int64_t T, int64_t E, int64_t k) {
  for (bool normalize : {false, true}) {
    SCOPED_TRACE(::testing::Message()
                 << "T=" << T << " E=" << E << " k=" << k << (normalize ? " normalized" : " raw"));
    std::vector<int32_t> want_ids;
    std::vector<double> want_w;
    reference_router(logits, T, E, k, normalize, want_ids, want_w);
    std::vector<int32_t> ids(size_t(T * k), -7);
    std::vector<float> w(size_t(T * k), NAN);
    cpu::router_topk(ids.data(), w.data(), logits.data(), T, E, k, normalize);
    EXPECT_TRUE(all_equal(ids, want_ids));
    EXPECT_TRUE(all_close(w, want_w, 1e-7, 1e-5));
  }
}

TEST(CpuRouter, RandomLogitsNormalizeOnAndOff) {
  std::mt19937 rng(21);
  check_router(random_floats(7 * 8, rng), 7, 8, 2);
  check_router(random_floats(5 * 64, rng, 2.0f), 5, 64, 8);
  check_router(random_floats(3 * 6, rng), 3, 6, 6);  // k = E: a full sort
  check_router(random_floats(2 * 5, rng), 2, 5, 1);
}

TEST(CpuRouter, TiesGoToTheLowerExpertId) {
  // Equal logits give bit-equal probabilities; the lower id must come first.
  const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f, 2.0f, 2.0f,    // four-way tie at 2
                                     1.0f, 1.0f, 1.0f, 1.0f,  1.0f, 1.0f,    // all equal
                                     -3.f, 4.0f, -3.f, 4.0f,  -3.f, -3.0f};  // ties at both levels
  check_router(logits, 3, 6, 3);
  std::vector<int32_t> ids(9);
  std::vector<float> w(9);
  cpu::router_topk(ids.data(), w.data(), logits.data(), 3, 6, 3, true);
  EXPECT_TRUE(all_equal(ids, std::vector<int32_t>{1, 2, 4, 0, 1, 2, 1, 3, 0}));
  EXPECT_NEAR(w[3], 1.0 / 3.0, 1e-7);  // normalised over three equal probabilities
}

// ---- embedding, gather, scatter -------------------------------------------------------------

TEST(CpuEmbedding, RowsOfTheSliceAndZerosOutside) {
  std::mt19937 rng(23);
  const int64_t rows = 10, cols = 13, offset = 100;
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    for (int64_t ld : {cols, cols + 5}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " ld=" << ld);
      const TestWeight t = make_weight(dt, rows, cols, ld, ld - cols, rng);
      // In the slice: 100, 109 (its edges), 105; outside: 99, 110, -1, 0.
      const std::vector<int32_t> ids = {100, 109, 99, 110, 105, -1, 0};
      std::vector<float> out(ids.size() * size_t(cols) + 4, kSentinel);
      std::fill(out.begin(), out.end() - 4, NAN);
      cpu::embedding(out.data(), t.w, ids.data(), int64_t(ids.size()), offset);
      std::vector<float> want(out.size(), kSentinel);
      for (size_t i = 0; i < ids.size(); ++i) {
        const int64_t r = ids[i] - offset;
        for (int64_t c = 0; c < cols; ++c)
          want[i * size_t(cols) + size_t(c)] =
              r >= 0 && r < rows ? float(t.values[size_t(r * cols + c)]) : 0.0f;
      }
      EXPECT_TRUE(all_equal(out, want));  // widening to f32 is exact
    }
  }
}

TEST(CpuRows, GatherRowsCopiesIndexedRows) {
  std::mt19937 rng(29);
  const int64_t dim = 5;
  const std::vector<float> in = random_floats(6 * size_t(dim), rng);
  const std::vector<int32_t> idx = {5, 0, 5, 2};  // repeats allowed
  std::vector<float> out(idx.size() * size_t(dim) + 3, kSentinel);
  cpu::gather_rows(out.data(), in.data(), idx.data(), int64_t(idx.size()), dim);
  std::vector<float> want(out.size(), kSentinel);
  for (size_t i = 0; i < idx.size(); ++i)
    std::copy_n(&in[size_t(idx[i] * dim)], dim, &want[i * size_t(dim)]);
  EXPECT_TRUE(all_equal(out, want));
}

// ---- the Backend object ---------------------------------------------------------------------

TEST(CpuBackend, SameResultsAsTheFreeFunctions) {
  auto be = make_cpu_backend(2);
  EXPECT_EQ(be->name(), "cpu");
  std::mt19937 rng(37);

  // Memory: aligned allocations, upload/download round trip, zero.
  float* buf = static_cast<float*>(be->alloc(100 * sizeof(float)));
  ASSERT_NE(buf, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf) % 64, 0u);
  const std::vector<float> src = random_floats(100, rng);
  std::vector<float> back(100, NAN);
  be->upload(buf, src.data(), 100 * sizeof(float));
  be->download(back.data(), buf, 100 * sizeof(float));
  EXPECT_TRUE(all_equal(back, src));
  be->zero(buf, 100 * sizeof(float));
  be->download(back.data(), buf, 100 * sizeof(float));
  EXPECT_TRUE(all_equal(back, std::vector<float>(100, 0.0f)));
  be->free(buf);

  // Host weights are used where they are (zero copy).
  const TestWeight t = make_weight(DType::BF16, 37, 67, 70, 2, rng);
  const Weight mapped = be->map_weight(t.w);
  EXPECT_EQ(mapped.data, t.w.data);
  EXPECT_EQ(mapped.ld, 70);

  for (int64_t m : {3, 17}) {
    const std::vector<float> x = random_floats(size_t(m * 67), rng);
    const std::vector<float> bias = random_floats(37, rng);
    std::vector<float> a(size_t(m * 37)), b(a.size());
    be->matmul(a.data(), x.data(), mapped, m, bias.data());
    cpu::matmul(b.data(), x.data(), t.w, m, bias.data());
    EXPECT_TRUE(all_equal(a, b)) << "matmul m=" << m;
  }

  const std::vector<float> logits = random_floats(4 * 8, rng);
  std::vector<int32_t> ia(8), ib(8);
  std::vector<float> wa(8), wb(8);
  be->router_topk(ia.data(), wa.data(), logits.data(), 4, 8, 2, true);
  cpu::router_topk(ib.data(), wb.data(), logits.data(), 4, 8, 2, true);
  EXPECT_TRUE(all_equal(ia, ib));
  EXPECT_TRUE(all_equal(wa, wb));

  const PagedCase c(rng);
  const std::vector<int32_t> seq = {0, 1, 3}, pos = {9, 6, 7};
  const std::vector<float> q = random_floats(3 * size_t(c.q_heads * c.d), rng);
  AttentionBatch ab{3, pos.data(), seq.data(), c.tables.data(), int(c.max_blocks), int(c.bs)};
  std::vector<float> oa(q.size()), ob(q.size());
  be->attention(oa.data(), q.data(), f32_cache(c.k_cache, c.v_cache), ab, c.q_heads, c.kv_heads,
                c.d, 0.25f);
  cpu::attention(ob.data(), q.data(), f32_cache(c.k_cache, c.v_cache), ab, c.q_heads, c.kv_heads,
                 c.d, 0.25f);
  EXPECT_TRUE(all_equal(oa, ob));
  EXPECT_TRUE(all_close(oa, c.reference(q, seq, pos, 0.25), 1e-5, 1e-5));
}

}  // namespace
}  // namespace qwen3moe
