// The model split over the ranks of mpirun (TP over heads, KV heads split or replicated, EP
// over experts, vocabulary-parallel embedding and lm_head) against the fixtures' float64
// references and against the same model on one rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/engine/generate.h"
#include "model_fixture.h"
#include "mpi_world.h"

namespace qwen3moe {
namespace {

Communicator& world() {
  return testing::world();
}

using testing::fixture;
using testing::LoadedModel;
using testing::tensor_values;

class MpiParity : public ::testing::TestWithParam<std::string> {};

TEST_P(MpiParity, LogitsMatchReferenceAndSingleRank) {
  const std::string dir = fixture("hf-tiny/" + GetParam());
  LoadedModel split(dir, &world(), 1);
  LoadedModel single(dir, nullptr, 1);
  const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
  for (int p = 0; p < 5; ++p) {
    const std::string key = "prompt_" + std::to_string(p);
    const auto tokens = tensor_values<int32_t>(ref.get(key + ".tokens"));
    const auto expected = tensor_values<float>(ref.get(key + ".logits"));
    const std::vector<float> got = prefill_logits(split.model, split.cache, tokens);
    const std::vector<float> one = prefill_logits(single.model, single.cache, tokens);
    ASSERT_EQ(got.size(), expected.size());
    float max_ref = 0, err_ref = 0, err_one = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_ref = std::max(max_ref, std::fabs(expected[i]));
      err_ref = std::max(err_ref, std::fabs(got[i] - expected[i]));
      err_one = std::max(err_one, std::fabs(got[i] - one[i]));
    }
    EXPECT_LE(err_ref, 1e-3f * (1 + max_ref)) << key << " on " << world().size() << " ranks";
    EXPECT_LE(err_one, 1e-4f * (1 + max_ref)) << key << " vs one rank";
  }
}

TEST_P(MpiParity, GreedyTokensEqualReference) {
  const std::string dir = fixture("hf-tiny/" + GetParam());
  LoadedModel split(dir, &world(), 1);
  const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
  for (int g = 0; g < 2; ++g) {
    const std::string key = "greedy_" + std::to_string(g);
    const auto prompt = tensor_values<int32_t>(ref.get(key + ".prompt"));
    const auto expected = tensor_values<int32_t>(ref.get(key + ".output"));
    GenerationOptions o;
    o.max_new_tokens = int32_t(expected.size());
    o.sampling.temperature = 0;
    o.ignore_eos = true;
    const GenerationResult r = generate(split.model, world(), split.cache, prompt, o);
    EXPECT_EQ(r.output_ids, expected) << key << " on " << world().size() << " ranks";
  }
}

INSTANTIATE_TEST_SUITE_P(HfTiny, MpiParity, ::testing::Values("moe_a", "dense_a"));

}  // namespace
}  // namespace qwen3moe
