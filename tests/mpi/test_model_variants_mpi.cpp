// A checkpoint with the awkward parts at once (a dense layer between MoE layers, tied
// embeddings, norm_topk_prob false, head_dim != hidden/heads, vocabulary and dense intermediate
// sizes that do not split evenly) gives the same logits and greedy tokens on every world size
// as on one rank. The one-rank forward itself is checked against a float64 reference in
// tests/unit/test_model_variants.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/checkpoint/random_checkpoint.h"
#include "core/engine/generate.h"
#include "model_fixture.h"
#include "mpi_world.h"

namespace qwen3moe {
namespace {

using testing::world;

constexpr const char* kConfig = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
  "vocab_size": 301, "hidden_size": 128, "intermediate_size": 90,
  "moe_intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 24, "num_experts": 8, "num_experts_per_tok": 3,
  "norm_topk_prob": false, "decoder_sparse_step": 1, "mlp_only_layers": [1],
  "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
  "tie_word_embeddings": true, "eos_token_id": 5})";

// One checkpoint per job: rank 0 writes it under its pid, the others wait at a barrier.
std::string shared_checkpoint() {
  int64_t pid = getpid();
  world().broadcast(&pid, sizeof(pid), 0);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("qwen3moe_mpi_variant_" + std::to_string(pid));
  if (world().rank() == 0) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "input_config.json") << kConfig;
    RandomCheckpointOptions o;
    o.seed = 11;
    write_random_checkpoint((dir / "input_config.json").string(), dir.string(), o);
  }
  world().barrier();
  return dir.string();
}

TEST(MpiVariants, SplitModelEqualsOneRank) {
  const std::string dir = shared_checkpoint();
  testing::LoadedModel split(dir, &world(), 1);
  testing::LoadedModel single(dir, nullptr, 1);
  ASSERT_FALSE(split.config.is_moe_layer(1));
  std::vector<int32_t> prompt;
  for (int i = 0; i < 37; ++i) prompt.push_back(int32_t((i * 37 + 11) % 301));
  const std::vector<float> a = prefill_logits(split.model, split.cache, prompt);
  const std::vector<float> b = prefill_logits(single.model, single.cache, prompt);
  ASSERT_EQ(a.size(), b.size());
  float max_ref = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(b[i]));
    err = std::max(err, std::fabs(a[i] - b[i]));
  }
  EXPECT_LE(err, 1e-4f * (1 + max_ref)) << "on " << world().size() << " ranks";

  GenerationOptions o;
  o.max_new_tokens = 24;
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  const GenerationResult ra = generate(split.model, world(), split.cache, prompt, o);
  const GenerationResult rb = generate(single.model, *single.comm, single.cache, prompt, o);
  EXPECT_EQ(ra.output_ids, rb.output_ids) << "on " << world().size() << " ranks";
  world().barrier();
  if (world().rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace qwen3moe
