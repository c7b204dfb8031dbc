// A Hugging Face generation_config.json: the sampling defaults the model's authors ship (Qwen3:
// temperature 0.6, top_p 0.95, top_k 20) and its end-of-sequence ids. The serving APIs apply a
// value here to whatever a request leaves unset, as vLLM does; each field is optional, and a
// field of the wrong type or out of range is an Error naming the file, the field and the value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qwen3moe {

struct GenerationConfig {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k;
  std::optional<int32_t> max_new_tokens;
  std::vector<int32_t> eos_token_ids;  // empty: not given

  // dir/generation_config.json, or all unset when the folder has none.
  static GenerationConfig load(const std::string& dir);
  // From the file's text; `source` names it in errors.
  static GenerationConfig from_json_text(const std::string& text, const std::string& source);
};

}  // namespace qwen3moe
