#include "core/checkpoint/random_checkpoint.h"

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
#include "kernels/common/rng.h"

namespace qwen3moe {
namespace {

// Fills one tensor. Chunks of 64K elements each have their own generator, seeded from the
// tensor's name, so the weights are the same whatever the number of threads.
void fill(std::vector<uint16_t>& out, const TensorSpec& spec, uint64_t seed) {
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
      out[size_t(i)] = f32_to_bf16(float(mean + std * r * std::cos(2 * M_PI * u2)));
      if (i + 1 < end)
        out[size_t(i + 1)] = f32_to_bf16(float(mean + std * r * std::sin(2 * M_PI * u2)));
    }
  }
}

}  // namespace

void write_random_checkpoint(const std::string& config_path, const std::string& out_dir,
                             const RandomCheckpointOptions& options) {
  namespace fs = std::filesystem;
  const ModelConfig config = ModelConfig::load(config_path);
  fs::create_directories(out_dir);
  {
    std::ifstream in(fs::is_directory(config_path) ? (fs::path(config_path) / "config.json")
                                                   : fs::path(config_path));
    std::stringstream ss;
    ss << in.rdbuf();
    std::ofstream out(fs::path(out_dir) / "config.json");
    out << ss.str();
    QWEN3MOE_CHECK(out.good(), "cannot write ", (fs::path(out_dir) / "config.json").string());
  }
  const std::vector<TensorSpec> layout = checkpoint_layout(config);
  // Group tensors into shards of at most max_shard_bytes.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    const uint64_t b = uint64_t(layout[i].numel()) * 2;
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
    std::vector<std::vector<uint16_t>> data(shards[s].size());
    std::vector<TensorToWrite> tensors;
    for (size_t j = 0; j < shards[s].size(); ++j) {
      const TensorSpec& spec = layout[shards[s][j]];
      fill(data[j], spec, options.seed);
      tensors.push_back({spec.name, DType::BF16, spec.shape, data[j].data()});
      weight_map[spec.name] = file;
      progress.add(uint64_t(spec.numel()) * 2);
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
