#include "core/checkpoint/layout.h"

#include <cmath>

namespace qwen3moe {

std::vector<TensorSpec> checkpoint_layout(const ModelConfig& c) {
  std::vector<TensorSpec> out;
  const int64_t H = c.hidden_size, V = c.vocab_size, D = c.head_dim;
  out.push_back({"model.embed_tokens.weight", {V, H}, TensorKind::kEmbedding});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "input_layernorm.weight", {H}, TensorKind::kNorm, l});
    out.push_back({p + "self_attn.q_proj.weight", {c.q_dim(), H}, TensorKind::kMatrix, l});
    out.push_back({p + "self_attn.k_proj.weight", {c.kv_dim(), H}, TensorKind::kMatrix, l});
    out.push_back({p + "self_attn.v_proj.weight", {c.kv_dim(), H}, TensorKind::kMatrix, l});
    out.push_back({p + "self_attn.o_proj.weight", {H, c.q_dim()}, TensorKind::kMatrix, l});
    if (c.attention_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {c.q_dim()}, TensorKind::kBias, l});
      out.push_back({p + "self_attn.k_proj.bias", {c.kv_dim()}, TensorKind::kBias, l});
      out.push_back({p + "self_attn.v_proj.bias", {c.kv_dim()}, TensorKind::kBias, l});
      out.push_back({p + "self_attn.o_proj.bias", {H}, TensorKind::kBias, l});
    }
    out.push_back({p + "self_attn.q_norm.weight", {D}, TensorKind::kNorm, l});
    out.push_back({p + "self_attn.k_norm.weight", {D}, TensorKind::kNorm, l});
    out.push_back({p + "post_attention_layernorm.weight", {H}, TensorKind::kNorm, l});
    if (c.is_moe_layer(l)) {
      const int64_t I = c.moe_intermediate_size;
      out.push_back({p + "mlp.gate.weight", {c.num_experts, H}, TensorKind::kRouter, l});
      for (int64_t e = 0; e < c.num_experts; ++e) {
        const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
        out.push_back({q + "gate_proj.weight", {I, H}, TensorKind::kMatrix, l, e});
        out.push_back({q + "up_proj.weight", {I, H}, TensorKind::kMatrix, l, e});
        out.push_back({q + "down_proj.weight", {H, I}, TensorKind::kMatrix, l, e});
      }
    } else {
      const int64_t I = c.intermediate_size;
      out.push_back({p + "mlp.gate_proj.weight", {I, H}, TensorKind::kMatrix, l});
      out.push_back({p + "mlp.up_proj.weight", {I, H}, TensorKind::kMatrix, l});
      out.push_back({p + "mlp.down_proj.weight", {H, I}, TensorKind::kMatrix, l});
    }
  }
  out.push_back({"model.norm.weight", {H}, TensorKind::kNorm});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {V, H}, TensorKind::kMatrix});
  return out;
}

RandomInit random_init(TensorKind kind, int64_t fan_in) {
  switch (kind) {
    case TensorKind::kNorm:
      return {1.0, 0.2};
    case TensorKind::kRouter:
      return {0.0, 1.0};
    case TensorKind::kBias:
      return {0.0, 0.02};
    case TensorKind::kMatrix:
    case TensorKind::kEmbedding:
      break;
  }
  return {0.0, 1.0 / std::sqrt(double(fan_in))};
}

uint64_t tensor_name_hash(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

}  // namespace qwen3moe
