#include "core/checkpoint/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/layout.h"
#include "core/checkpoint/progress.h"
#include "core/checkpoint/safetensors.h"
#include "kernels/common/check.h"
#include "kernels/common/dtype.h"
#include "kernels/common/rng.h"

namespace qwen3moe {
namespace {

// Fills one tensor with its values in f32. Chunks of 64K elements each have their own
// generator, seeded from the tensor's name, so the weights are the same whatever the number of
// threads.
void fill(std::vector<float>& out, const TensorSpec& spec, uint64_t seed) {
  const int64_t n = spec.numel();
  out.resize(size_t(n));
  const RandomInit init = random_init(spec.kind, spec.shape.back());
  const double mean = init.mean, std = init.std;
  constexpr int64_t kChunk = 1 << 16;
  const uint64_t base = seed * 0x9e3779b97f4a7c15ull ^ tensor_name_hash(spec.name);
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t c = 0; c < (n + kChunk - 1) / kChunk; ++c) {
    Rng rng(base + uint64_t(c));
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; i += 2) {
      // Box-Muller: two normals from two uniforms.
      const double u1 = 1.0 - rng.uniform(), u2 = rng.uniform();
      const double r = std::sqrt(-2.0 * std::log(u1));
      out[size_t(i)] = float(mean + std * r * std::cos(2 * M_PI * u2));
      if (i + 1 < end) out[size_t(i + 1)] = float(mean + std * r * std::sin(2 * M_PI * u2));
    }
  }
}

constexpr int64_t kFp8Block = 128;

// A projection an fp8 checkpoint stores as F8_E4M3 (the router, embeddings, lm_head and norms
// stay bf16).
bool fp8_projection(const TensorSpec& spec) {
  return spec.kind == TensorKind::kMatrix && spec.shape.size() == 2 &&
         spec.name.ends_with("_proj.weight");
}

// One tensor's bytes as written: bf16, or fp8 codes plus [ceil(N/128), ceil(K/128)] f32 scales
// (each block's amax / 448, so its largest value is the largest e4m3).
struct Encoded {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
};
Encoded encode(const std::vector<float>& v, const TensorSpec& spec, bool fp8) {
  Encoded e;
  if (!fp8) {
    e.bytes.resize(v.size() * 2);
    auto* out = reinterpret_cast<uint16_t*>(e.bytes.data());
    for (size_t i = 0; i < v.size(); ++i) out[i] = f32_to_bf16(v[i]);
    return e;
  }
  const int64_t N = spec.shape[0], K = spec.shape[1];
  const int64_t br = (N + kFp8Block - 1) / kFp8Block, bc = (K + kFp8Block - 1) / kFp8Block;
  e.scales.assign(size_t(br * bc), 0.0f);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < K; ++c) {
      float& amax = e.scales[size_t((r / kFp8Block) * bc + c / kFp8Block)];
      amax = std::max(amax, std::fabs(v[size_t(r * K + c)]));
    }
  for (float& s : e.scales) s = s > 0 ? s / 448.0f : 1.0f;
  e.bytes.resize(v.size());
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < K; ++c)
      e.bytes[size_t(r * K + c)] = f32_to_fp8_e4m3(
          v[size_t(r * K + c)] / e.scales[size_t((r / kFp8Block) * bc + c / kFp8Block)]);
  return e;
}

}  // namespace

void write_random_checkpoint(const std::string& config_path, const std::string& out_dir,
                             const RandomCheckpointOptions& options) {
  namespace fs = std::filesystem;
  QWEN3MOE_CHECK(options.dtype == "bf16" || options.dtype == "fp8",
                 "--dtype must be bf16 or "
                 "fp8, got '",
                 options.dtype, "'");
  const bool fp8 = options.dtype == "fp8";
  const ModelConfig config = ModelConfig::load(config_path);
  QWEN3MOE_CHECK(!config.quantization.fp8() || fp8, config_path,
                 " has an fp8 quantization_config: write it with --dtype fp8");
  fs::create_directories(out_dir);
  {
    std::ifstream in(fs::is_directory(config_path) ? (fs::path(config_path) / "config.json")
                                                   : fs::path(config_path));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (fp8) {  // the quantization_config Qwen's FP8 releases carry
      nlohmann::json j = nlohmann::json::parse(text);
      j["quantization_config"] = {{"quant_method", "fp8"},
                                  {"fmt", "e4m3"},
                                  {"activation_scheme", "dynamic"},
                                  {"weight_block_size", {kFp8Block, kFp8Block}},
                                  {"modules_to_not_convert", {"lm_head"}}};
      text = j.dump(2) + "\n";
    }
    std::ofstream out(fs::path(out_dir) / "config.json");
    out << text;
    QWEN3MOE_CHECK(out.good(), "cannot write ", (fs::path(out_dir) / "config.json").string());
  }
  const std::vector<TensorSpec> layout = checkpoint_layout(config);
  // Group tensors into shards of at most max_shard_bytes.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    const uint64_t b = uint64_t(layout[i].numel()) * (fp8 && fp8_projection(layout[i]) ? 1 : 2);
    if (shard_bytes + b > options.max_shard_bytes && !shards.back().empty()) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += b;
    total += b;
  }
  Progress progress("init-random", total, options.progress);
  nlohmann::json weight_map = nlohmann::json::object();
  const bool sharded = shards.size() > 1;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    const std::string file = sharded ? name : "model.safetensors";
    std::vector<Encoded> data(shards[s].size());
    std::vector<TensorToWrite> tensors;
    std::vector<float> values;
    for (size_t j = 0; j < shards[s].size(); ++j) {
      const TensorSpec& spec = layout[shards[s][j]];
      fill(values, spec, options.seed);
      const bool quantized = fp8 && fp8_projection(spec);
      data[j] = encode(values, spec, quantized);
      tensors.push_back(
          {spec.name, quantized ? DType::F8E4M3 : DType::BF16, spec.shape, data[j].bytes.data()});
      weight_map[spec.name] = file;
      if (quantized) {
        const std::string scale = spec.name + "_scale_inv";
        tensors.push_back({scale,
                           DType::F32,
                           {(spec.shape[0] + kFp8Block - 1) / kFp8Block,
                            (spec.shape[1] + kFp8Block - 1) / kFp8Block},
                           data[j].scales.data()});
        weight_map[scale] = file;
      }
      progress.add(data[j].bytes.size());
    }
    write_safetensors((fs::path(out_dir) / file).string(), tensors);
  }
  progress.finish();
  if (sharded) {
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    std::ofstream out(fs::path(out_dir) / "model.safetensors.index.json");
    out << index.dump(2) << "\n";
  } else {
    fs::remove(fs::path(out_dir) / "model.safetensors.index.json");
  }
}

}  // namespace qwen3moe
