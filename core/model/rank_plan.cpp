#include "core/model/rank_plan.h"

#include "core/checkpoint/layout.h"

namespace qwen3moe {

RankPlan plan_rank(const ModelConfig& c, const Topology& topo, const WeightStore* store) {
  RankPlan plan;
  const double tp = topo.tp(), ep = topo.world();
  const Quantization& q = c.quantization;
  for (const TensorSpec& s : checkpoint_layout(c)) {
    // Without a checkpoint, the dtypes the config implies: BF16, and FP8 for the projections
    // of a config with an fp8 quantization_config (as Qwen's -FP8 releases store them).
    const DType dt = store ? store->expect(s.name, s.shape).dtype : q.stored_dtype(s.name);
    const double n = double(s.numel());
    double b = n * double(dtype_size(dt));
    if (dt == DType::F8E4M3 && s.shape.size() == 2 && q.fp8())  // its f32 block scales
      b += 4.0 * double(q.scale_blocks(s.shape[0], s.shape[1]));
    plan.bytes_by_dtype[dtype_name(dt)] += b;
    plan.params_total += n;
    const bool is_attn =
        s.name.find("self_attn.") != std::string::npos && s.name.find("_norm") == std::string::npos;
    if (s.expert >= 0) {
      plan.params_active += n * double(c.num_experts_per_tok) / double(c.num_experts);
      plan.experts += b / ep;
    } else {
      plan.params_active += n;
      if (s.kind == TensorKind::kEmbedding || s.name == "lm_head.weight") {
        plan.vocab += b / tp;
      } else if (is_attn) {
        const bool kv = s.name.find("k_proj") != std::string::npos ||
                        s.name.find("v_proj") != std::string::npos;
        plan.attention +=
            kv ? b * double(topo.kv_heads_per_rank()) / double(c.num_key_value_heads) : b / tp;
      } else if (s.kind == TensorKind::kMatrix) {
        plan.dense += b / tp;
      } else {
        plan.replicated += b;
      }
    }
  }
  return plan;
}

}  // namespace qwen3moe
