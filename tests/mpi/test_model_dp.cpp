// Attention data parallelism (world = dp x tp): each DP group of tp ranks runs its own batch of
// sequences through attention, the experts stay spread over the whole world, and every logit
// and greedy token equals the same sequence on one rank and the fixtures' float64 references.
// Runs every split the world allows: np 2 (dp 2 x tp 1), np 4 (dp 2 x tp 2, dp 4 x tp 1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/engine/generate.h"
#include "kernels/common/check.h"
#include "model_fixture.h"
#include "mpi_world.h"

namespace qwen3moe {
namespace {

using testing::world;

using testing::fixture;
using testing::LoadedModel;
using testing::tensor_values;

using testing::dp_sizes;

// One step of several sequences: each (its tokens, from position start) into its own
// SequenceKv, every position's logits when all_logits, else its last one's.
struct Part {
  std::vector<int32_t> tokens;
  int64_t start = 0;
  SequenceKv* kv = nullptr;
};
StepBatch batch_of(const std::vector<Part>& parts, bool all_logits) {
  StepBatch b;
  b.replayable = false;
  int width = 0;
  for (const Part& p : parts) {
    for (size_t t = 0; t < p.tokens.size(); ++t) {
      b.tokens.push_back(p.tokens[t]);
      b.positions.push_back(int32_t(p.start + int64_t(t)));
      b.token_seq.push_back(int32_t(&p - parts.data()));
      if (all_logits || t + 1 == p.tokens.size())
        b.logit_rows.push_back(int32_t(b.tokens.size() - 1));
    }
    p.kv->append(int64_t(p.tokens.size()), b.slots);
    width = std::max(width, int(p.kv->blocks().size()));
  }
  b.max_blocks_per_seq = width;
  b.block_tables.assign(parts.size() * size_t(width), 0);
  for (size_t s = 0; s < parts.size(); ++s)
    std::copy(parts[s].kv->blocks().begin(), parts[s].kv->blocks().end(),
              b.block_tables.begin() + int64_t(s * size_t(width)));
  return b;
}

// The tokens of every group's batch, which every rank passes alike.
std::vector<int32_t> group_tokens(int dp, int mine, int32_t tokens) {
  std::vector<int32_t> all(size_t(dp), 0);
  all[size_t(mine)] = tokens;
  std::vector<int32_t> out(size_t(dp) * size_t(world().size()));
  world().all_gather(all.data(), out.data(), size_t(dp) * sizeof(int32_t));
  std::vector<int32_t> sum(size_t(dp), 0);
  for (size_t r = 0; r < out.size(); ++r)
    sum[r % size_t(dp)] = std::max(sum[r % size_t(dp)], out[r]);
  return sum;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

class DpParity : public ::testing::TestWithParam<std::string> {};

// Group g prefills prompts g, g + dp, ... of the fixture's five (a batch of several sequences
// per group, different per group); a group left without one (dp 4 has five prompts over four
// groups, so some hold one) still joins the exchange. Then one step where only group 0 works.
TEST_P(DpParity, PrefillLogitsEqualOneRankAndReference) {
  const std::string dir = fixture("hf-tiny/" + GetParam());
  const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
  LoadedModel single(dir, nullptr, 1);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<float>> one, expected;
  for (int p = 0; p < 5; ++p) {
    const std::string key = "prompt_" + std::to_string(p);
    prompts.push_back(tensor_values<int32_t>(ref.get(key + ".tokens")));
    expected.push_back(tensor_values<float>(ref.get(key + ".logits")));
    one.push_back(prefill_logits(single.model, single.cache, prompts.back()));
  }
  for (int dp : dp_sizes()) {
    LoadedModel split(dir, &world(), 1, world().size() / dp);
    const int g = split.topo.dp_rank();
    for (bool only_group_0 : {false, true}) {
      std::vector<int> mine;
      for (int p = g; p < 5; p += dp)
        if (!only_group_0 || g == 0) mine.push_back(p);
      std::vector<std::unique_ptr<SequenceKv>> kvs;
      std::vector<Part> parts;
      for (int p : mine) {
        kvs.push_back(std::make_unique<SequenceKv>(split.cache));
        parts.push_back({prompts[size_t(p)], 0, kvs.back().get()});
      }
      StepBatch b = batch_of(parts, true);
      b.group_tokens = group_tokens(dp, g, int32_t(b.tokens.size()));
      std::vector<float> logits;
      split.model.forward(b, split.cache, logits);
      const int64_t V = split.config.vocab_size;
      size_t row = 0;
      for (int p : mine) {
        const size_t n = prompts[size_t(p)].size() * size_t(V);
        const std::vector<float> got(logits.begin() + int64_t(row),
                                     logits.begin() + int64_t(row + n));
        row += n;
        const float scale = 1 + max_abs(expected[size_t(p)]);
        float err_ref = 0, err_one = 0;
        for (size_t i = 0; i < n; ++i) {
          err_ref = std::max(err_ref, std::fabs(got[i] - expected[size_t(p)][i]));
          err_one = std::max(err_one, std::fabs(got[i] - one[size_t(p)][i]));
        }
        EXPECT_LE(err_ref, 1e-3f * scale) << "prompt " << p << " dp " << dp << " group " << g;
        EXPECT_LE(err_one, 1e-4f * scale) << "prompt " << p << " dp " << dp << " group " << g;
      }
      EXPECT_EQ(row, logits.size());
    }
  }
}

// Greedy decoding in lockstep: group g decodes the references' greedy prompt g % 2 twice over
// (two sequences), groups finish at different steps, and a finished group keeps joining the
// exchange with no tokens until every group is done.
TEST_P(DpParity, GreedyTokensEqualReference) {
  const std::string dir = fixture("hf-tiny/" + GetParam());
  const WeightStore ref = WeightStore::open_file(dir + "/reference.safetensors");
  for (int dp : dp_sizes()) {
    LoadedModel split(dir, &world(), 1, world().size() / dp);
    const int g = split.topo.dp_rank();
    const std::string key = "greedy_" + std::to_string(g % 2);
    const auto prompt = tensor_values<int32_t>(ref.get(key + ".prompt"));
    auto expected = tensor_values<int32_t>(ref.get(key + ".output"));
    expected.resize(expected.size() - size_t(g % 3));  // groups end at different steps
    // Steps every group runs: the longest group's.
    int32_t steps = int32_t(expected.size());
    std::vector<int32_t> all_steps(size_t(world().size()));
    world().all_gather(&steps, all_steps.data(), sizeof(int32_t));
    const int32_t total = *std::max_element(all_steps.begin(), all_steps.end());
    SequenceKv a(split.cache), b(split.cache);
    std::vector<std::vector<int32_t>> out(2);
    std::vector<float> logits;
    const int64_t V = split.config.vocab_size;
    for (int32_t step = 0; step < total; ++step) {
      std::vector<Part> parts;
      if (step < int32_t(expected.size())) {
        for (int s = 0; s < 2; ++s) {
          SequenceKv* kv = s == 0 ? &a : &b;
          if (step == 0)
            parts.push_back({prompt, 0, kv});
          else
            parts.push_back({{out[size_t(s)].back()}, int64_t(prompt.size()) + step - 1, kv});
        }
      }
      StepBatch batch = batch_of(parts, false);
      batch.group_tokens = group_tokens(dp, g, int32_t(batch.tokens.size()));
      split.model.forward(batch, split.cache, logits);
      for (size_t s = 0; s < parts.size(); ++s) {
        const float* row = logits.data() + int64_t(s) * V;
        out[s].push_back(int32_t(std::max_element(row, row + V) - row));
      }
    }
    EXPECT_EQ(out[0], expected) << key << " dp " << dp << " group " << g;
    EXPECT_EQ(out[1], expected) << key << " dp " << dp << " group " << g;
  }
}

INSTANTIATE_TEST_SUITE_P(HfTiny, DpParity,
                         ::testing::Values("moe_a", "dense_a", "moe_yarn", "moe_fp8"));

// A batch whose group_tokens disagree with it, or miss a group, is refused by name.
TEST(DpBatch, GroupTokensMustDescribeEveryGroup) {
  if (world().size() < 2) GTEST_SKIP();
  LoadedModel split(fixture("hf-tiny/moe_a"), &world(), 1, world().size() / 2);
  SequenceKv kv(split.cache);
  StepBatch b = batch_of({{{1, 2, 3}, 0, &kv}}, false);
  std::vector<float> logits;
  b.group_tokens = {3};  // one group of two
  EXPECT_THROW(split.model.forward(b, split.cache, logits), Error);
}

}  // namespace
}  // namespace qwen3moe
