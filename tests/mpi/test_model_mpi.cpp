// The model split over the ranks of mpirun (TP over heads, KV heads split or replicated, EP
// over experts, vocabulary-parallel embedding and lm_head) against the fixtures' float64
// references and against the same model on one rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "core/engine/generate.h"
#include "model_fixture.h"
#include "mpi_world.h"

namespace qwen3moe {
namespace {

using testing::world;

using testing::fixture;
using testing::LoadedModel;
using testing::tensor_values;

// `tokens` greedy tokens after `prompt` on all ranks, EOS ignored (the references' setting).
GenerationResult greedy(LoadedModel& m, const std::vector<int32_t>& prompt, size_t tokens) {
  GenerationOptions o;
  o.max_new_tokens = int32_t(tokens);
  o.sampling.temperature = 0;
  o.ignore_eos = true;
  return generate(m.model, world(), m.cache, prompt, o);
}

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
    const GenerationResult r = greedy(split, prompt, expected.size());
    EXPECT_EQ(r.output_ids, expected) << key << " on " << world().size() << " ranks";
  }
}

// --a2a-dtype bf16: the rows a rank sends its peers are rounded to bf16 both ways, its own rows
// and the ids and weights stay exact. The logits move by bf16 round-off (3% of the largest
// logit at most; f32 stays within 1e-5), and greedy decoding keeps the reference's tokens up to
// a step where its top two are nearer than that. Prints the figures the README quotes.
TEST(MpiBf16Payload, LogitsNearReferenceGreedyKeptUpToANearTie) {
  const std::string dir = fixture("hf-tiny/moe_a");
  LoadedModel split(dir, &world(), 1);
  split.model.set_a2a_dtype(DType::BF16);
  const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
  float worst = 0, worst_rel = 0;
  for (int p = 0; p < 5; ++p) {
    const std::string key = "prompt_" + std::to_string(p);
    const auto tokens = tensor_values<int32_t>(ref.get(key + ".tokens"));
    const auto expected = tensor_values<float>(ref.get(key + ".logits"));
    const std::vector<float> got = prefill_logits(split.model, split.cache, tokens);
    ASSERT_EQ(got.size(), expected.size());
    float max_ref = 0, err = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_ref = std::max(max_ref, std::fabs(expected[i]));
      err = std::max(err, std::fabs(got[i] - expected[i]));
    }
    worst = std::max(worst, err);
    worst_rel = std::max(worst_rel, err / (1 + max_ref));
    EXPECT_LE(err, 3e-2f * (1 + max_ref)) << key << " on " << world().size() << " ranks";
  }
  if (world().rank() == 0)
    std::printf(
        "bf16 payload, %d ranks: worst |logit - float64 reference| %.3g (%.3g of 1 + max)\n",
        world().size(), double(worst), double(worst_rel));
  for (int g = 0; g < 2; ++g) {
    const std::string key = "greedy_" + std::to_string(g);
    const auto prompt = tensor_values<int32_t>(ref.get(key + ".prompt"));
    const auto expected = tensor_values<int32_t>(ref.get(key + ".output"));
    const GenerationResult r = greedy(split, prompt, expected.size());
    // Tokens must agree until the first step where the reference's top two logits are closer
    // than the worst logits error measured above: only there may bf16 round-off flip it.
    const auto scores = tensor_values<float>(ref.get(key + ".scores"));
    const size_t vocab = scores.size() / expected.size();
    size_t same = 0, tie = expected.size();
    float tie_margin = 0;
    while (same < expected.size() && r.output_ids[same] == expected[same]) ++same;
    for (size_t step = 0; step < expected.size() && tie == expected.size(); ++step) {
      std::vector<float> row(scores.begin() + long(step * vocab),
                             scores.begin() + long((step + 1) * vocab));
      std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<float>());
      if (row[0] - row[1] < worst) tie = step, tie_margin = row[0] - row[1];
    }
    if (world().rank() == 0)
      std::printf(
          "bf16 payload, %d ranks: %s keeps %zu of %zu greedy tokens (first near-tie of "
          "the reference: step %zu, top-2 margin %.3g)\n",
          world().size(), key.c_str(), same, expected.size(), tie, double(tie_margin));
    EXPECT_GE(same, std::min(tie, expected.size())) << key << " on " << world().size() << " ranks";
  }
}

// The fixed-capacity exchange (decode's): the same expert sums as the counted one, so the
// logits of prompts that fit it are bit-identical to the counted path's, longer prompts take
// the counted path, and greedy decoding (every decode step fixed) keeps the reference tokens.
TEST(MpiFixedCapacity, BitIdenticalToTheCountedExchange) {
  const std::string dir = fixture("hf-tiny/moe_a");
  LoadedModel fixed(dir, &world(), 1), counted(dir, &world(), 1);
  const int64_t capacity = 4;
  fixed.model.set_a2a_capacity(capacity);
  const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
  int fitted = 0;
  for (int p = 0; p < 5; ++p) {
    const std::string key = "prompt_" + std::to_string(p);
    auto tokens = tensor_values<int32_t>(ref.get(key + ".tokens"));
    for (const size_t n : {size_t(1), size_t(3), tokens.size()}) {
      if (n > tokens.size()) continue;
      const std::vector<int32_t> prefix(tokens.begin(), tokens.begin() + long(n));
      const bool fits = int64_t(n) <= capacity * world().size();
      const int64_t before = fixed.model.fixed_dispatches();
      EXPECT_EQ(prefill_logits(fixed.model, fixed.cache, prefix),
                prefill_logits(counted.model, counted.cache, prefix))
          << key << " first " << n << " tokens on " << world().size() << " ranks";
      // Every MoE layer took the fixed exchange when the prompt fits, none when it does not.
      const int64_t took = fixed.model.fixed_dispatches() - before;
      if (world().size() > 1) {
        EXPECT_EQ(took > 0, fits) << key << " first " << n << " tokens";
      }
      fitted += fits && took > 0;
      EXPECT_EQ(counted.model.fixed_dispatches(), 0);
    }
  }
  if (world().size() > 1) {
    EXPECT_GE(fitted, 8);  // the fixed path ran
  }
  const int64_t before_greedy = fixed.model.fixed_dispatches();
  for (int g = 0; g < 2; ++g) {
    const std::string key = "greedy_" + std::to_string(g);
    const auto prompt = tensor_values<int32_t>(ref.get(key + ".prompt"));
    const auto expected = tensor_values<int32_t>(ref.get(key + ".output"));
    EXPECT_EQ(greedy(fixed, prompt, expected.size()).output_ids, expected)
        << key << " on " << world().size() << " ranks";
  }
  // Each decode step (one token) took it in every MoE layer.
  if (world().size() > 1) {
    EXPECT_GE(fixed.model.fixed_dispatches() - before_greedy, 2 * 39);
  }
  fixed.model.set_a2a_dtype(DType::BF16);
  counted.model.set_a2a_dtype(DType::BF16);
  const auto three = tensor_values<int32_t>(ref.get("greedy_0.prompt"));
  EXPECT_EQ(prefill_logits(fixed.model, fixed.cache, three),
            prefill_logits(counted.model, counted.cache, three))
      << "bf16 payload on " << world().size() << " ranks";
}

INSTANTIATE_TEST_SUITE_P(HfTiny, MpiParity,
                         ::testing::Values("moe_a", "dense_a", "moe_yarn", "moe_fp8"));

}  // namespace
}  // namespace qwen3moe
