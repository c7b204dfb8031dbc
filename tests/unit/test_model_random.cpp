// The model with weights made on the backend (RandomWeights: what bench --backend cuda uses
// for a 60 GB model), the expert count the bench's byte figures rest on, and the graph flag
// on a backend without graphs (the CPU: it must change nothing).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "core/checkpoint/config.h"
#include "core/checkpoint/layout.h"
#include "core/model/kv_cache.h"
#include "core/model/model.h"
#include "kernels/backend.h"
#include "model_fixture.h"
#include "parallel/comm/communicator.h"
#include "parallel/topology.h"

namespace qwen3moe {
namespace {

struct RandomModel {
  explicit RandomModel(uint64_t seed,
                       ModelConfig c = ModelConfig::load(testing::fixture("hf-tiny/moe_a")))
      : config(std::move(c)),
        backend(make_cpu_backend(2)),
        comm(make_local_communicator()),
        topo(0, 1, 1,
             {config.num_attention_heads, config.num_key_value_heads, config.num_experts,
              config.vocab_size}),
        model(config, RandomWeights{seed}, *backend, *comm, topo),
        cache(config, topo, *backend, 16, 16) {}
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Communicator> comm;
  Topology topo;
  Model model;
  KvCache cache;
};

// Decode steps of 3 sequences; all logits in order.
std::vector<float> decode(RandomModel& m, int steps) {
  std::vector<std::unique_ptr<SequenceKv>> seqs;
  for (int s = 0; s < 3; ++s) seqs.push_back(std::make_unique<SequenceKv>(m.cache));
  std::vector<float> all, logits;
  for (int step = 0; step < steps; ++step) {
    StepBatch b;
    b.max_blocks_per_seq = 2;
    for (int s = 0; s < 3; ++s) {
      std::vector<int32_t> slots;
      b.positions.push_back(int32_t(seqs[size_t(s)]->length()));
      seqs[size_t(s)]->append(1, slots);
      b.tokens.push_back(int32_t((step * 5 + s * 11) % m.config.vocab_size));
      b.token_seq.push_back(s);
      b.slots.push_back(slots[0]);
      b.logit_rows.push_back(s);
      std::vector<int32_t> row = seqs[size_t(s)]->blocks();
      row.resize(2, 0);
      b.block_tables.insert(b.block_tables.end(), row.begin(), row.end());
    }
    m.model.forward(b, m.cache, logits);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

TEST(ModelRandomWeights, FiniteReproducibleAndSeeded) {
  RandomModel a(1), b(1), c(2);
  const std::vector<float> la = decode(a, 4), lb = decode(b, 4), lc = decode(c, 4);
  ASSERT_EQ(la.size(), size_t(4 * 3 * a.config.vocab_size));
  for (float v : la) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(la, lb);
  EXPECT_NE(la, lc);
  EXPECT_GT(a.model.resident_weight_bytes(), size_t(0));
}

// A config with an fp8 quantization_config makes its projections as a block-scaled checkpoint
// stores them (bench --random-weights of Qwen3-30B-A3B-FP8's shape): one byte a weight plus a
// 4-byte scale per 128x128 block, everything else bf16, and the model decodes finite logits,
// the same for the same seed.
TEST(ModelRandomWeights, Fp8ConfigMakesBlockScaledProjections) {
  const ModelConfig fp8 = ModelConfig::load(testing::fixture("hf-tiny/moe_fp8"));
  ASSERT_TRUE(fp8.quantization.fp8());
  ModelConfig bf16 = fp8;
  bf16.quantization = Quantization{};
  RandomModel a(5, fp8), b(5, fp8), wide(5, bf16);
  size_t saved = 0;  // bytes the fp8 layout saves: a byte per projection weight, less scales
  for (const TensorSpec& t : checkpoint_layout(fp8)) {
    const std::string suffix = ".weight";
    if (!t.name.ends_with(suffix) ||
        !fp8.quantization.quantizes(t.name.substr(0, t.name.size() - suffix.size())))
      continue;
    const int64_t blocks =
        (t.shape[0] + fp8.quantization.block_rows - 1) / fp8.quantization.block_rows *
        ((t.shape[1] + fp8.quantization.block_cols - 1) / fp8.quantization.block_cols);
    saved += size_t(t.numel()) - size_t(blocks) * sizeof(float);
  }
  ASSERT_GT(saved, size_t(0));
  EXPECT_EQ(wide.model.resident_weight_bytes() - a.model.resident_weight_bytes(), saved);
  const std::vector<float> la = decode(a, 3);
  for (float v : la) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(la, decode(b, 3));
  EXPECT_NE(la, decode(wide, 3));
}

TEST(ModelRandomWeights, GraphFlagIsANoOpWithoutGraphs) {
  RandomModel a(3), b(3);
  b.model.set_graphs(true);
  EXPECT_EQ(decode(a, 5), decode(b, 5));
}

// One token selects k distinct experts in every MoE layer.
TEST(ModelRandomWeights, CountsTheExpertsTheTokensSelect) {
  RandomModel m(4);
  m.model.count_active_experts(true);
  StepBatch b;
  SequenceKv seq(m.cache);
  std::vector<int32_t> slots;
  seq.append(1, slots);
  b.tokens = {7};
  b.positions = {0};
  b.token_seq = {0};
  b.slots = slots;
  b.block_tables = seq.blocks();
  b.max_blocks_per_seq = 1;
  b.logit_rows = {0};
  std::vector<float> logits;
  m.model.forward(b, m.cache, logits);
  const int64_t moe_layers = m.config.moe_layer_count();
  EXPECT_EQ(m.model.active_experts_counted(), moe_layers * m.config.num_experts_per_tok);
  m.model.count_active_experts(false);
  m.model.forward(b, m.cache, logits);
  EXPECT_EQ(m.model.active_experts_counted(), moe_layers * m.config.num_experts_per_tok);
}

}  // namespace
}  // namespace qwen3moe
