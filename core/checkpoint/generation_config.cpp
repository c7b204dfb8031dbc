#include "core/checkpoint/generation_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kernels/common/check.h"
#include "kernels/common/json_depth.h"

namespace qwen3moe {
namespace {

using json = nlohmann::json;

std::optional<float> number(const json& j, const char* key, const std::string& source, double lo,
                            double hi) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  QWEN3MOE_CHECK(v.is_number(), source, ": field '", key, "' must be a number, got ", v.dump());
  const double x = v.get<double>();
  QWEN3MOE_CHECK(std::isfinite(x) && x >= lo && x <= hi, source, ": field '", key, "' must be in [",
                 lo, ", ", hi, "], got ", v.dump());
  return float(x);
}

std::optional<int32_t> integer(const json& j, const char* key, const std::string& source,
                               int64_t lo) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  QWEN3MOE_CHECK(v.is_number_integer(), source, ": field '", key, "' must be an integer, got ",
                 v.dump());
  // Unsigned values past int64 read as their wrapped value; take them as the huge numbers they are.
  const bool huge =
      v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max());
  const int64_t x = huge ? std::numeric_limits<int64_t>::max() : v.get<int64_t>();
  QWEN3MOE_CHECK(x >= lo && x <= std::numeric_limits<int32_t>::max(), source, ": field '", key,
                 "' must be in [", lo, ", ", std::numeric_limits<int32_t>::max(), "], got ",
                 v.dump());
  return int32_t(x);
}

}  // namespace

GenerationConfig GenerationConfig::from_json_text(const std::string& text,
                                                  const std::string& source) {
  json j;
  try {
    j = parse_json_nested_at_most<json>(text, source);
  } catch (const json::parse_error& e) {
    QWEN3MOE_FAIL(source, ": not valid JSON (", e.what(), ")");
  }
  QWEN3MOE_CHECK(j.is_object(), source, ": expected a JSON object");
  GenerationConfig g;
  g.temperature = number(j, "temperature", source, 0, 1e6);
  g.top_p = number(j, "top_p", source, 0, 1);
  if (g.top_p && *g.top_p == 0) QWEN3MOE_FAIL(source, ": field 'top_p' must be in (0, 1], got 0");
  g.min_p = number(j, "min_p", source, 0, 1);
  g.repetition_penalty = number(j, "repetition_penalty", source, 1e-6, 1e6);
  g.top_k = integer(j, "top_k", source, 0);
  g.max_new_tokens = integer(j, "max_new_tokens", source, 1);
  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const json& e = j["eos_token_id"];
    const json list = e.is_array() ? e : json::array({e});
    for (const json& v : list) {
      QWEN3MOE_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 &&
                         v.get<int64_t>() <= std::numeric_limits<int32_t>::max(),
                     source, ": eos_token_id holds ", v.dump(), ", not a token id");
      g.eos_token_ids.push_back(int32_t(v.get<int64_t>()));
    }
  }
  return g;
}

GenerationConfig GenerationConfig::load(const std::string& dir) {
  const std::filesystem::path path = std::filesystem::path(dir) / "generation_config.json";
  if (!std::filesystem::exists(path)) return {};
  std::ifstream in(path);
  QWEN3MOE_CHECK(in.good(), "cannot read ", path.string());
  std::stringstream text;
  text << in.rdbuf();
  return from_json_text(text.str(), path.string());
}

}  // namespace qwen3moe
