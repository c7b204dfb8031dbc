#include "core/checkpoint/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/common/check.h"
#include "kernels/common/json_depth.h"

namespace qwen3moe {
namespace {

using json = nlohmann::json;

// Field readers that name the file, the field and the value in every error.
struct Reader {
  const json& j;
  const std::string& source;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  int64_t integer(const char* key, bool required, int64_t fallback = 0) const {
    if (!has(key)) {
      QWEN3MOE_CHECK(!required, source, ": missing field '", key, "'");
      return fallback;
    }
    const json& v = j[key];
    QWEN3MOE_CHECK(v.is_number_integer(), source, ": field '", key, "' must be an integer, got ",
                   v.dump());
    return v.get<int64_t>();
  }
  double number(const char* key, bool required, double fallback = 0) const {
    if (!has(key)) {
      QWEN3MOE_CHECK(!required, source, ": missing field '", key, "'");
      return fallback;
    }
    const json& v = j[key];
    QWEN3MOE_CHECK(v.is_number(), source, ": field '", key, "' must be a number, got ", v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j[key];
    QWEN3MOE_CHECK(v.is_boolean(), source, ": field '", key, "' must be true or false, got ",
                   v.dump());
    return v.get<bool>();
  }
  void positive(const char* key, int64_t v) const {
    QWEN3MOE_CHECK(v > 0, source, ": field '", key, "' must be positive, got ", v);
  }
  // Upper bounds far past any real model, so that a hostile value is an error naming the field
  // and not an allocation of its size or an overflow in the sizes derived from it.
  void at_most(const char* key, int64_t v, int64_t max) const {
    QWEN3MOE_CHECK(v <= max, source, ": field '", key, "' = ", v, " is past the limit of ", max);
  }
};

}  // namespace

bool Quantization::quantizes(const std::string& module) const {
  if (!fp8() || !module.ends_with("_proj")) return false;
  for (const std::string& m : modules_to_not_convert)
    if (module == m || module.ends_with("." + m) || module.starts_with(m + ".")) return false;
  return true;
}

DType Quantization::stored_dtype(const std::string& name) const {
  const std::string suffix = ".weight";
  return name.ends_with(suffix) && quantizes(name.substr(0, name.size() - suffix.size()))
             ? DType::F8E4M3
             : DType::BF16;
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end())
    return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::moe_layer_count() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += is_moe_layer(l);
  return n;
}

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& source) {
  json j;
  try {
    j = parse_json_nested_at_most<json>(text, source);
  } catch (const json::parse_error& e) {
    QWEN3MOE_FAIL(source, ": not valid JSON (", e.what(), ")");
  }
  QWEN3MOE_CHECK(j.is_object(), source, ": expected a JSON object");
  Reader r{j, source};
  ModelConfig c;

  QWEN3MOE_CHECK(r.has("architectures") && j["architectures"].is_array() &&
                     !j["architectures"].empty() && j["architectures"][0].is_string(),
                 source, ": missing field 'architectures'");
  c.architecture = j["architectures"][0].get<std::string>();
  QWEN3MOE_CHECK(c.architecture == "Qwen3ForCausalLM" || c.architecture == "Qwen3MoeForCausalLM",
                 source, ": unsupported architecture '", c.architecture,
                 "' (expected Qwen3ForCausalLM or Qwen3MoeForCausalLM)");
  const bool moe = c.architecture == "Qwen3MoeForCausalLM";
  if (r.has("model_type")) {
    QWEN3MOE_CHECK(j["model_type"].is_string(), source,
                   ": field 'model_type' must be a string, got ", j["model_type"].dump());
    c.model_type = j["model_type"].get<std::string>();
  }

  c.vocab_size = r.integer("vocab_size", true);
  c.hidden_size = r.integer("hidden_size", true);
  c.num_hidden_layers = r.integer("num_hidden_layers", true);
  c.num_attention_heads = r.integer("num_attention_heads", true);
  c.num_key_value_heads = r.integer("num_key_value_heads", false, c.num_attention_heads);
  c.intermediate_size = r.integer("intermediate_size", !moe);
  c.max_position_embeddings = r.integer("max_position_embeddings", true);
  r.positive("vocab_size", c.vocab_size);
  r.positive("hidden_size", c.hidden_size);
  r.positive("num_hidden_layers", c.num_hidden_layers);
  r.positive("num_attention_heads", c.num_attention_heads);
  r.positive("num_key_value_heads", c.num_key_value_heads);
  r.positive("max_position_embeddings", c.max_position_embeddings);
  r.at_most("vocab_size", c.vocab_size, int64_t(1) << 24);
  r.at_most("hidden_size", c.hidden_size, int64_t(1) << 17);
  r.at_most("num_hidden_layers", c.num_hidden_layers, int64_t(1) << 12);
  r.at_most("num_attention_heads", c.num_attention_heads, int64_t(1) << 12);
  r.at_most("max_position_embeddings", c.max_position_embeddings, (int64_t(1) << 31) - 1);
  r.at_most("intermediate_size", c.intermediate_size, int64_t(1) << 20);
  QWEN3MOE_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, source,
                 ": num_attention_heads=", c.num_attention_heads,
                 " is not a multiple of num_key_value_heads=", c.num_key_value_heads);
  if (r.has("head_dim")) {
    c.head_dim = r.integer("head_dim", true);
  } else {
    QWEN3MOE_CHECK(c.hidden_size % c.num_attention_heads == 0, source,
                   ": hidden_size=", c.hidden_size,
                   " is not divisible by num_attention_heads=", c.num_attention_heads,
                   " and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  r.positive("head_dim", c.head_dim);
  r.at_most("head_dim", c.head_dim, int64_t(1) << 12);
  QWEN3MOE_CHECK(c.head_dim % 2 == 0, source, ": field 'head_dim' must be even for RoPE, got ",
                 c.head_dim);

  if (moe) {
    c.num_experts = r.integer("num_experts", true);
    c.num_experts_per_tok = r.integer("num_experts_per_tok", true);
    c.moe_intermediate_size = r.integer("moe_intermediate_size", true);
    c.decoder_sparse_step = r.integer("decoder_sparse_step", false, 1);
    c.norm_topk_prob = r.boolean("norm_topk_prob", false);
    r.positive("num_experts", c.num_experts);
    r.positive("num_experts_per_tok", c.num_experts_per_tok);
    r.positive("moe_intermediate_size", c.moe_intermediate_size);
    r.positive("decoder_sparse_step", c.decoder_sparse_step);
    r.at_most("num_experts", c.num_experts, int64_t(1) << 14);
    r.at_most("moe_intermediate_size", c.moe_intermediate_size, int64_t(1) << 20);
    r.at_most("decoder_sparse_step", c.decoder_sparse_step, int64_t(1) << 12);
    QWEN3MOE_CHECK(c.num_experts_per_tok <= c.num_experts, source,
                   ": num_experts_per_tok=", c.num_experts_per_tok,
                   " exceeds num_experts=", c.num_experts);
    if (r.has("mlp_only_layers")) {
      QWEN3MOE_CHECK(j["mlp_only_layers"].is_array(), source,
                     ": field 'mlp_only_layers' must be a list, got ", j["mlp_only_layers"].dump());
      for (const json& v : j["mlp_only_layers"]) {
        QWEN3MOE_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 &&
                           v.get<int64_t>() < c.num_hidden_layers,
                       source, ": mlp_only_layers holds ", v.dump(),
                       ", not a layer index below num_hidden_layers=", c.num_hidden_layers);
        c.mlp_only_layers.push_back(v.get<int64_t>());
      }
    }
    bool any_dense = false;
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) any_dense |= !c.is_moe_layer(l);
    if (any_dense) {
      QWEN3MOE_CHECK(
          c.intermediate_size > 0, source,
          ": field 'intermediate_size' must be positive when some layers are dense, got ",
          c.intermediate_size);
    }
  } else {
    r.positive("intermediate_size", c.intermediate_size);
  }

  c.rope_theta = r.number("rope_theta", false, 10000.0);
  QWEN3MOE_CHECK(c.rope_theta > 0, source, ": field 'rope_theta' must be positive, got ",
                 c.rope_theta);
  if (r.has("rope_scaling")) {
    const json& rs = j["rope_scaling"];
    QWEN3MOE_CHECK(rs.is_object(), source, ": rope_scaling must be an object, got ", rs.dump());
    const json& type_field = rs.contains("rope_type") ? rs["rope_type"] : rs.value("type", json());
    const std::string type = type_field.is_string() ? type_field.get<std::string>() : "";
    QWEN3MOE_CHECK(type == "default" || type == "yarn", source, ": rope_scaling type '",
                   type.empty() ? type_field.dump() : type,
                   "' is not supported (absent, null, \"default\" or \"yarn\")");
    RopeScaling& y = c.rope_scaling;
    y.type = type;
    if (type == "yarn") {
      const std::string where = source + " rope_scaling";
      const Reader q{rs, where};
      y.factor = q.number("factor", true);
      QWEN3MOE_CHECK(std::isfinite(y.factor) && y.factor >= 1, where,
                     ": field 'factor' must be at least 1, got ", y.factor);
      y.original_max_position =
          q.integer("original_max_position_embeddings", false, c.max_position_embeddings);
      q.positive("original_max_position_embeddings", y.original_max_position);
      y.beta_fast = q.number("beta_fast", false, 32);
      y.beta_slow = q.number("beta_slow", false, 1);
      QWEN3MOE_CHECK(y.beta_fast > 0 && y.beta_slow > 0, where,
                     ": beta_fast and beta_slow must be positive, got ", y.beta_fast, " and ",
                     y.beta_slow);
      y.truncate = q.boolean("truncate", true);
      y.attention_factor = q.number("attention_factor", false, 0);
      y.mscale = q.number("mscale", false, 0);
      y.mscale_all_dim = q.number("mscale_all_dim", false, 0);
      QWEN3MOE_CHECK(y.attention_factor >= 0 && y.mscale >= 0 && y.mscale_all_dim >= 0, where,
                     ": attention_factor, mscale and mscale_all_dim must not be negative");
      // The window YaRN extends to is the context (vLLM derives max_model_len the same way).
      const double extended = std::floor(y.factor * double(y.original_max_position));
      QWEN3MOE_CHECK(extended < double(int64_t(1) << 31), where, ": factor ", y.factor,
                     " x original_max_position_embeddings ", y.original_max_position,
                     " is past 2^31 positions");
      c.max_position_embeddings = std::max(c.max_position_embeddings, int64_t(extended));
    }
  }
  QWEN3MOE_CHECK(!r.boolean("use_sliding_window", false), source,
                 ": use_sliding_window=true is not supported (Qwen3 checkpoints ship false)");
  c.rms_norm_eps = r.number("rms_norm_eps", false, 1e-6);
  QWEN3MOE_CHECK(c.rms_norm_eps > 0, source, ": field 'rms_norm_eps' must be positive, got ",
                 c.rms_norm_eps);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.attention_bias = r.boolean("attention_bias", false);
  if (r.has("hidden_act")) {
    const std::string act =
        j["hidden_act"].is_string() ? j["hidden_act"].get<std::string>() : j["hidden_act"].dump();
    QWEN3MOE_CHECK(act == "silu", source, ": hidden_act '", act, "' is not supported (only silu)");
  }
  if (r.has("eos_token_id")) {
    const json& e = j["eos_token_id"];
    auto add = [&](const json& v) {
      // Unsigned values past int64 read as negative; int32 is the token ids' type.
      QWEN3MOE_CHECK(v.is_number_integer() &&
                         !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT32_MAX)) &&
                         v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX,
                     source, ": eos_token_id holds ", v.dump(), ", not a token id (0..", INT32_MAX,
                     ")");
      c.eos_token_ids.push_back(int32_t(v.get<int64_t>()));
    };
    if (e.is_array()) {
      for (const json& v : e) add(v);
    } else {
      add(e);
    }
  }
  if (r.has("torch_dtype") && j["torch_dtype"].is_string())
    c.torch_dtype = j["torch_dtype"].get<std::string>();
  if (r.has("quantization_config")) {
    const json& qj = j["quantization_config"];
    const std::string where = source + " quantization_config";
    QWEN3MOE_CHECK(qj.is_object(), where, " must be an object, got ", qj.dump());
    auto string_field = [&](const char* key, const char* fallback) {
      if (!qj.contains(key) || qj[key].is_null()) return std::string(fallback);
      QWEN3MOE_CHECK(qj[key].is_string(), where, ": field '", key, "' must be a string, got ",
                     qj[key].dump());
      return qj[key].get<std::string>();
    };
    Quantization& q = c.quantization;
    q.method = string_field("quant_method", "");
    QWEN3MOE_CHECK(q.method == "fp8", where, ": quant_method '", q.method,
                   "' is not supported (only fp8 block-scaled weights)");
    const std::string fmt = string_field("fmt", "e4m3");
    QWEN3MOE_CHECK(fmt == "e4m3", where, ": fmt '", fmt, "' is not supported (only e4m3)");
    const std::string act = string_field("activation_scheme", "dynamic");
    QWEN3MOE_CHECK(act == "dynamic", where, ": activation_scheme '", act,
                   "' is not supported (only dynamic)");
    QWEN3MOE_CHECK(qj.contains("weight_block_size") && qj["weight_block_size"].is_array() &&
                       qj["weight_block_size"].size() == 2 &&
                       qj["weight_block_size"][0].is_number_integer() &&
                       qj["weight_block_size"][1].is_number_integer(),
                   where,
                   ": weight_block_size must be [rows, cols] (per-tensor fp8 is not "
                   "supported), got ",
                   qj.value("weight_block_size", json()).dump());
    q.block_rows = qj["weight_block_size"][0].get<int64_t>();
    q.block_cols = qj["weight_block_size"][1].get<int64_t>();
    // The CPU kernels load 8 columns at a time inside one block.
    QWEN3MOE_CHECK(q.block_rows > 0 && q.block_cols > 0 && q.block_cols % 8 == 0 &&
                       q.block_rows <= 4096 && q.block_cols <= 4096,
                   where, ": weight_block_size [", q.block_rows, ", ", q.block_cols,
                   "] must be positive, at most 4096, with columns a multiple of 8");
    if (qj.contains("modules_to_not_convert") && !qj["modules_to_not_convert"].is_null()) {
      const json& m = qj["modules_to_not_convert"];
      QWEN3MOE_CHECK(m.is_array(), where, ": modules_to_not_convert must be a list, got ",
                     m.dump());
      for (const json& name : m) {
        QWEN3MOE_CHECK(name.is_string(), where, ": modules_to_not_convert holds ", name.dump());
        q.modules_to_not_convert.push_back(name.get<std::string>());
      }
    }
  }
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::filesystem::path p(path);
  if (std::filesystem::is_directory(p)) p /= "config.json";
  std::ifstream in(p);
  QWEN3MOE_CHECK(in.good(), "cannot open ", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), p.string());
}

}  // namespace qwen3moe
