// FP8 block-scaled checkpoints (Qwen's released format) on the CPU: the e4m3 conversions, the
// CPU GEMM paths on fp8 weights against the fixture's float64 products (gemm.* keys: partial
// blocks of 192 and 320 included) and on slices that start inside a scale block, and each
// malformed checkpoint is one error naming the tensor (or the config field).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/safetensors.h"
#include "kernels/common/check.h"
#include "kernels/common/dtype.h"
#include "kernels/cpu/fp8_avx512.h"
#include "kernels/cpu/ops.h"
#include "model_fixture.h"
#include "test_util.h"

namespace qwen3moe {
namespace {

using nlohmann::json;
using testing::fixture;
using testing::fp8_weight;
using testing::tensor_values;

const std::string kFp8 = "hf-tiny/moe_fp8";

TEST(Fp8, E4m3CodesRoundTripAndRoundToNearestEven) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(uint8_t(c))));
      continue;
    }
    const float f = fp8_e4m3_to_f32(uint8_t(c));
    if (f == 0.0f) continue;  // +-0
    EXPECT_EQ(f32_to_fp8_e4m3(f), c) << "code " << c << " = " << f;
  }
  EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);   // the largest
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), 0x1p-9f);  // the smallest subnormal
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), 0x1p-6f);  // the smallest normal
  EXPECT_EQ(fp8_e4m3_to_f32(0xB8), -1.0f);
  EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);  // halfway between 1 and 1.125: even (1)
  EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3A);  // halfway between 1.125 and 1.25: even (1.25)
  EXPECT_EQ(f32_to_fp8_e4m3(1000.0f), 0x7E);  // saturates
  EXPECT_EQ(f32_to_fp8_e4m3(-1000.0f), 0xFE);
}

// The CPU's fp8 GEMM paths, each once: the register kernel in AVX2 and in AVX-512 (where this
// CPU has it; else AVX2 again) and the widened-panel sgemm. Restores the kernel choice.
struct Fp8Path {
  const char* name;
  bool avx512;
  bool blas;
};
const Fp8Path kFp8Paths[] = {
    {"own avx2", false, false}, {"own avx512", true, false}, {"blas", true, true}};
void run_fp8_path(const Fp8Path& p, float* y, const float* x, const Weight& w, int64_t m) {
  cpu::set_fp8_avx512(p.avx512);
  if (p.blas)
    cpu::matmul_blas(y, x, w, m, nullptr);
  else
    cpu::matmul_own(y, x, w, m, nullptr);
  cpu::set_fp8_avx512(true);
}

// Every CPU GEMM path (the register kernels and the widened-panel sgemm) against the fixture's
// float64 x · dequantized W^T, for six projections including partial 192- and 320-wide blocks.
TEST(Fp8, CpuGemmPathsMatchTheFixtureProducts) {
  const testing::Fp8Gemms gemms = testing::fp8_gemms();
  ASSERT_EQ(gemms.cases.size(), 6u);
  for (const testing::Fp8GemmCase& c : gemms.cases)
    for (const Fp8Path& path : kFp8Paths) {
      std::vector<float> y(size_t(c.m * c.weight.rows));
      run_fp8_path(path, y.data(), c.x.data(), c.weight, c.m);
      float worst = 0, top = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        worst = std::max(worst, std::fabs(y[i] - c.y[i]));
        top = std::max(top, std::fabs(c.y[i]));
      }
      EXPECT_LE(worst, 1e-5f * (1 + top)) << c.module << " " << path.name;
    }
}

// A tensor-parallel slice that starts inside a scale block (rows from 61, columns from 40 of a
// [320, 256] weight with 128x128 blocks) reads the scales of the blocks it lies in. Its first
// block is 88 columns, then 43: 32-, 16- and 8-wide steps and a K % 8 tail of 3. Its 199 rows
// put a 4-row tile across the block boundary at row 128 and leave 3 rows over; m = 1, 2, 3, 5
// run every tile shape (1x4, 2x4, 3x2, 4x2, 4x1, 1x1), the AVX2 kernel's per-block sums (small
// tiles) and per-weight scaling (large ones); blas widens panels.
TEST(Fp8, SliceInsideABlockUsesItsBlocksScales) {
  const WeightStore store = WeightStore::open(fixture(kFp8));
  const Weight full = fp8_weight(store, "model.layers.1.mlp.gate_proj");
  std::printf("fp8 AVX-512 kernel on this CPU: %s\n", cpu::fp8_avx512_enabled() ? "yes" : "no");
  for (const int64_t m : {1, 2, 3, 5}) {
    const int64_t r0 = 61, c0 = 40, rows = 199, cols = 131;
    Weight s = full;
    s.data = static_cast<const uint8_t*>(full.data) + r0 * full.ld + c0;
    s.rows = rows;
    s.cols = cols;
    s.scale_row0 = r0;
    s.scale_col0 = c0;
    std::vector<float> x(size_t(m * cols));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * float(i));
    for (const Fp8Path& path : kFp8Paths) {
      std::vector<float> y(size_t(m * rows));
      run_fp8_path(path, y.data(), x.data(), s, m);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t r = 0; r < rows; ++r) {
          double want = 0;
          for (int64_t c = 0; c < cols; ++c) {
            const uint8_t q = static_cast<const uint8_t*>(full.data)[(r0 + r) * full.ld + c0 + c];
            want += double(x[size_t(i * cols + c)]) * double(fp8_e4m3_to_f32(q)) *
                    double(full.scale[((r0 + r) / 128) * full.scale_ld + (c0 + c) / 128]);
          }
          ASSERT_NEAR(y[size_t(i * rows + r)], want, 1e-5 * (1 + std::fabs(want)))
              << path.name << " m " << m << " row " << i << " out " << r;
        }
    }
  }
}

// A copy of the fp8 fixture with its config and tensors changed, for the error cases.
std::string broken_copy(const std::string& tag, const std::function<void(json&)>& config,
                        const std::function<void(std::vector<TensorToWrite>&)>& tensors) {
  const std::string src = fixture(kFp8), dir = testing::fresh_dir(tag);
  json c = json::parse(testing::read_file(src + "/config.json"));
  config(c);
  testing::write_file(dir + "/config.json", c.dump());
  const WeightStore store = WeightStore::open(src);
  std::vector<TensorToWrite> out;
  for (const auto& [name, t] : store.all()) out.push_back({name, t->dtype, t->shape, t->data});
  tensors(out);
  write_safetensors(dir + "/model.safetensors", out);
  return dir;
}

std::string load_error(const std::string& dir) {
  return testing::error_of([&] { testing::LoadedModel m(dir); });
}

void drop(std::vector<TensorToWrite>& t, const std::string& name) {
  std::erase_if(t, [&](const TensorToWrite& x) { return x.name == name; });
}

const std::string kQ = "model.layers.0.self_attn.q_proj";

TEST(Fp8Errors, EachMalformedCheckpointNamesItsTensor) {
  auto keep_config = [](json&) {};
  auto keep_tensors = [](std::vector<TensorToWrite>&) {};
  // An F8 tensor without the config that says how to read it.
  EXPECT_ERROR_NAMES(
      load_error(broken_copy(
          "noconfig", [](json& c) { c.erase("quantization_config"); }, keep_tensors)),
      kQ + ".weight", "F8_E4M3", "quantization_config");
  // An F8 tensor without its scales.
  EXPECT_ERROR_NAMES(load_error(broken_copy(
                         "noscale", keep_config,
                         [](std::vector<TensorToWrite>& t) { drop(t, kQ + ".weight_scale_inv"); })),
                     kQ + ".weight", kQ + ".weight_scale_inv");
  // Scales of the wrong shape.
  static const float one[4] = {1, 1, 1, 1};
  EXPECT_ERROR_NAMES(
      load_error(broken_copy("scaleshape", keep_config,
                             [](std::vector<TensorToWrite>& t) {
                               drop(t, kQ + ".weight_scale_inv");
                               t.push_back({kQ + ".weight_scale_inv", DType::F32, {4, 1}, one});
                             })),
      kQ + ".weight_scale_inv", "[4, 1]", "[2, 2]");
  // A block size other than the one the scales were made with.
  EXPECT_ERROR_NAMES(load_error(broken_copy(
                         "blocksize",
                         [](json& c) {
                           c["quantization_config"]["weight_block_size"] = {64, 128};
                         },
                         keep_tensors)),
                     "weight_scale_inv", "[64, 128]");
  // The config says fp8 over a bf16 projection.
  EXPECT_ERROR_NAMES(load_error(broken_copy(
                         "bf16proj",
                         [](json& c) {
                           c["quantization_config"]["modules_to_not_convert"] =
                               json::array({"lm_head", "model.layers.0.mlp.gate"});
                         },
                         [](std::vector<TensorToWrite>& t) {
                           static std::vector<uint16_t> bf16(256 * 256, 0x3F80);
                           drop(t, kQ + ".weight");
                           drop(t, kQ + ".weight_scale_inv");
                           t.push_back({kQ + ".weight", DType::BF16, {256, 256}, bf16.data()});
                         })),
                     "quantization_config", kQ + ".weight", "BF16");
}

TEST(Fp8Errors, QuantizationConfigFields) {
  const std::string base = testing::read_file(fixture(kFp8) + "/config.json");
  auto with = [&](const char* key, const json& value) {
    json c = json::parse(base);
    c["quantization_config"][key] = value;
    return testing::error_of([&] { ModelConfig::from_json_text(c.dump(), "config.json"); });
  };
  EXPECT_ERROR_NAMES(with("quant_method", "awq"), "quant_method", "awq");
  EXPECT_ERROR_NAMES(with("fmt", "e5m2"), "fmt", "e5m2");
  EXPECT_ERROR_NAMES(with("activation_scheme", "static"), "activation_scheme", "static");
  EXPECT_ERROR_NAMES(with("weight_block_size", json::array({128, 100})), "weight_block_size",
                     "100");
  EXPECT_ERROR_NAMES(with("weight_block_size", nullptr), "weight_block_size");
  EXPECT_ERROR_NAMES(with("modules_to_not_convert", "lm_head"), "modules_to_not_convert");
  const ModelConfig ok = ModelConfig::from_json_text(base, "config.json");
  EXPECT_TRUE(ok.quantization.fp8());
  EXPECT_EQ(ok.quantization.block_rows, 128);
  EXPECT_EQ(ok.quantization.modules_to_not_convert.size(), 2u);
}

}  // namespace
}  // namespace qwen3moe
