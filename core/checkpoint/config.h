// A Hugging Face config.json of Qwen3ForCausalLM or Qwen3MoeForCausalLM, parsed into a typed,
// validated struct: every field the forward uses is checked at load, and a bad one is an Error
// naming the field and its value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/dtype.h"

namespace qwen3moe {

// config.json's rope_scaling: absent or "default" (plain RoPE), or YaRN as transformers'
// _compute_yarn_parameters reads it (core/model/rope_table.h builds the tables).
struct RopeScaling {
  std::string type = "default";           // "default" | "yarn"
  double factor = 1;                      // context extension over the original window
  int64_t original_max_position = 0;      // the pretrained window
  double beta_fast = 32, beta_slow = 1;   // the correction range's rotation counts
  bool truncate = true;                   // floor/ceil the correction range
  double attention_factor = 0;            // cos and sin scale; 0: 0.1 ln(factor) + 1 (or mscale)
  double mscale = 0, mscale_all_dim = 0;  // DeepSeek's form of the attention factor (0: unset)
};

// config.json's quantization_config: none, or FP8 block-scaled weights as Qwen publishes them
// (quant_method "fp8", fmt "e4m3", dynamic activations, each quantized Linear's weight F8_E4M3
// with a weight_scale_inv of one f32 per block).
struct Quantization {
  std::string method;                               // "" (none) | "fp8"
  int64_t block_rows = 0, block_cols = 0;           // weight_block_size
  std::vector<std::string> modules_to_not_convert;  // module names kept in bf16
  bool fp8() const { return method == "fp8"; }
  // Whether an fp8 checkpoint stores `module` (a tensor's name less ".weight") as F8_E4M3: a
  // linear projection (*_proj) that modules_to_not_convert does not name, whole, as its last
  // components (e.g. "lm_head") or as a prefix. The router, embeddings and norms stay bf16.
  bool quantizes(const std::string& module) const;
  // The dtype a checkpoint of this config stores tensor `name` in when nothing else says:
  // F8_E4M3 for "X.weight" of a module X it quantizes, else BF16.
  DType stored_dtype(const std::string& name) const;
  // Block scales of an fp8 [rows, cols] matrix: ceil(rows / block_rows) * ceil(cols / block_cols).
  int64_t scale_blocks(int64_t rows, int64_t cols) const {
    return (rows + block_rows - 1) / block_rows * ((cols + block_cols - 1) / block_cols);
  }
};

struct ModelConfig {
  std::string architecture;  // "Qwen3ForCausalLM" | "Qwen3MoeForCausalLM"
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;      // dense MLP
  int64_t moe_intermediate_size = 0;  // each expert
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t num_experts = 0;  // 0: dense
  int64_t num_experts_per_tok = 0;
  bool norm_topk_prob = false;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  // With YaRN, at least factor x original_max_position (the window it extends to), as vLLM
  // derives its context length.
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::vector<int32_t> eos_token_ids;
  std::string torch_dtype;
  Quantization quantization;

  bool is_moe() const { return num_experts > 0; }
  // As transformers' Qwen3MoeDecoderLayer: MoE iff not in mlp_only_layers, experts > 0 and
  // (layer+1) % sparse_step == 0.
  bool is_moe_layer(int64_t layer) const;
  int64_t moe_layer_count() const;  // layers for which is_moe_layer holds
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }

  static ModelConfig from_json_text(const std::string& text, const std::string& source);
  static ModelConfig load(const std::string& path);  // a config.json file or a model folder
};

}  // namespace qwen3moe
