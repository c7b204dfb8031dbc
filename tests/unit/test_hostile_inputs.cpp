// Hostile files, by class (issue: hardening): each is one clear error naming the limit and the
// file, never a stack overflow, a hang, a wrapped number or an allocation sized by the input.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "core/checkpoint/config.h"
#include "core/checkpoint/generation_config.h"
#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"
#include "kernels/common/split.h"
#include "test_util.h"
#include "tokenizer_test_util.h"

namespace qwen3moe {
namespace {

using testing::error_of;
using Clock = std::chrono::steady_clock;

std::string nested(size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

TEST(HostileTokenizer, DeepNestingIsAnErrorNotAStackOverflow) {
  nlohmann::ordered_json j = testing::tiny_tokenizer_json();
  std::string text = j.dump();
  // A key the loader skips, holding 200k levels of arrays.
  text.insert(1, "\"padding\": " + nested(200000) + ", ");
  EXPECT_ERROR_NAMES(error_of([&] { Tokenizer::from_json(text, "tok.json"); }), "tok.json",
                     "nested deeper than 128");
  // And inside a section the loader parses (the normalizer).
  j = testing::tiny_tokenizer_json();
  text = j.dump();
  const std::string key = "\"normalizer\":";
  text.insert(text.find(key) + key.size(), "{\"a\": " + nested(300000) + "},\"unused\":");
  EXPECT_ERROR_NAMES(error_of([&] { Tokenizer::from_json(text, "tok.json"); }), "tok.json");
}

TEST(HostileTokenizer, IdsAtTheInt32EdgeAndHugeIdsAreRefused) {
  for (const int64_t id :
       {int64_t(INT32_MAX), int64_t(INT32_MAX) + 1, int64_t(1) << 40, int64_t(-1)}) {
    nlohmann::ordered_json j = testing::tiny_tokenizer_json();
    j["added_tokens"][0]["id"] = id;
    EXPECT_ERROR_NAMES(error_of([&] { Tokenizer::from_json(j.dump(), "tok.json"); }), "tok.json",
                       "added_tokens");
  }
  // Valid-looking but far past the 261 tokens: the tables would be sized by it.
  nlohmann::ordered_json j = testing::tiny_tokenizer_json();
  j["added_tokens"][0]["id"] = 500000000;
  EXPECT_ERROR_NAMES(error_of([&] { Tokenizer::from_json(j.dump(), "tok.json"); }), "tok.json",
                     "500000000", "far past");
  j = testing::tiny_tokenizer_json();
  j["model"]["vocab"]["ab"] = (int64_t(1) << 30) - 1;
  EXPECT_ERROR_NAMES(error_of([&] { Tokenizer::from_json(j.dump(), "tok.json"); }), "far past");
  // Types: a content that is not a string, a flag that is not a boolean.
  j = testing::tiny_tokenizer_json();
  j["added_tokens"][0]["content"] = 5;
  EXPECT_ERROR_NAMES(error_of([&] { Tokenizer::from_json(j.dump(), "tok.json"); }), "content");
  j = testing::tiny_tokenizer_json();
  j["added_tokens"][0]["special"] = "yes";
  EXPECT_ERROR_NAMES(error_of([&] { Tokenizer::from_json(j.dump(), "tok.json"); }), "special");
}

TEST(HostileChatTemplate, DeepNestingIsAnErrorNamingTheLimit) {
  std::string blocks;
  for (int i = 0; i < 100000; ++i) blocks += "{% if true %}";
  EXPECT_ERROR_NAMES(error_of([&] { ChatTemplate::from_source(blocks); }), "nested deeper");
  EXPECT_ERROR_NAMES(
      error_of([&] { ChatTemplate::from_source("{{ " + nested(100000, '(', ')') + " }}"); }),
      "nested deeper");
  EXPECT_ERROR_NAMES(
      error_of([&] { ChatTemplate::from_source("{{ " + std::string(100000, '-') + "1 }}"); }),
      "nested deeper");
  EXPECT_ERROR_NAMES(error_of([&] { ChatTemplate::from_source("{{ " + nested(100000) + " }}"); }),
                     "nested deeper");
  // Real nesting depths work.
  std::string ok;
  for (int i = 0; i < 40; ++i) ok += "{% if true %}";
  ok += "x";
  for (int i = 0; i < 40; ++i) ok += "{% endif %}";
  EXPECT_EQ(ChatTemplate::from_source(ok).render({}, false, false), "x");
}

TEST(HostileChatTemplate, ManyTagsParseInLinearTime) {
  // 200k tags on 200k lines: the line numbers were counted from the start for every tag.
  std::string source;
  for (int i = 0; i < 100000; ++i) source += "{% if false %}x{% endif %}\n";
  // Linear: twice the tags take about twice the time (not four times); generous for a loaded
  // machine and the sanitizer build.
  auto parse_seconds = [](const std::string& src) {
    const auto start = Clock::now();
    const ChatTemplate tpl = ChatTemplate::from_source(src);
    return seconds_since(start);
  };
  const double once = parse_seconds(source);
  const double twice = parse_seconds(source + source);
  EXPECT_LT(twice, 3.0 * once + 0.5) << once << " s, then " << twice << " s";
}

TEST(HostileChatTemplate, RenderingIsBoundedInSizeStepsAndRanges) {
  auto render_error = [](const std::string& source) {
    return error_of([&] { ChatTemplate::from_source(source).render({}, false, false); });
  };
  EXPECT_ERROR_NAMES(render_error("{% for i in range(1000000000000) %}{% endfor %}"), "range()");
  EXPECT_ERROR_NAMES(render_error("{% for i in range(9223372036854775807) %}{% endfor %}"),
                     "range()");
  EXPECT_ERROR_NAMES(render_error("{{ 'ab' * 100000000000 }}"), "MiB");
  EXPECT_ERROR_NAMES(render_error("{% set ns = namespace(s='x') %}{% for i in range(100) %}"
                                  "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
                     "MiB");
  {
    // Doubling a list: refused by the list cap or, first, by the steps its checks cost.
    const std::string m = render_error(
        "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}");
    EXPECT_TRUE(m.find("list of more than") != std::string::npos ||
                m.find("statements") != std::string::npos)
        << m;
  }
  EXPECT_ERROR_NAMES(render_error("{% for i in range(1000000) %}{% for j in range(1000000) %}"
                                  "{% endfor %}{% endfor %}"),
                     "statements");
  // Found in review: string '+' doubling, integer overflow and a 2**63-turn power, a namespace
  // holding itself or nesting deeper each turn, and a filter that loops in a for.
  EXPECT_ERROR_NAMES(render_error("{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                                  "{% set ns.s = ns.s + ns.s %}{% endfor %}"),
                     "MiB");
  EXPECT_ERROR_NAMES(render_error("{{ 9223372036854775807 + 1 }}"), "overflow");
  EXPECT_ERROR_NAMES(render_error("{{ 3037000500 * 3037000500 }}"), "overflow");
  EXPECT_ERROR_NAMES(render_error("{{ (-9223372036854775807 - 1) // -1 }}"), "overflow");
  EXPECT_ERROR_NAMES(render_error("{{ 2 ** 64 }}"), "overflow");
  EXPECT_EQ(ChatTemplate::from_source("{{ 1 ** 9223372036854775807 }}|{{ 2 ** 10 }}")
                .render({}, false, false),
            "1|1024");
  EXPECT_ERROR_NAMES(render_error("{% set ns = namespace(a=1) %}{% set ns.me = ns %}"), "itself");
  EXPECT_ERROR_NAMES(render_error("{% set ns = namespace(l=[]) %}{% for i in range(200000) %}"
                                  "{% set ns.l = [ns.l] %}{% endfor %}"),
                     "nested deeper");
  EXPECT_ERROR_NAMES(render_error("{% for i in range(1048576) if range(1048576) %}{% endfor %}"),
                     "statements");
}

nlohmann::json dense_config() {
  return {{"architectures", {"Qwen3ForCausalLM"}},
          {"vocab_size", 64},
          {"hidden_size", 32},
          {"intermediate_size", 64},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 8},
          {"max_position_embeddings", 128},
          {"eos_token_id", 3}};
}

TEST(HostileConfig, HugeCountsAreErrorsNamingTheField) {
  for (const char* field : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                            "max_position_embeddings", "intermediate_size", "head_dim"}) {
    nlohmann::json j = dense_config();
    j[field] = int64_t(1) << 40;
    EXPECT_ERROR_NAMES(error_of([&] { ModelConfig::from_json_text(j.dump(), "c.json"); }), "c.json",
                       field, "limit");
  }
  nlohmann::json j = dense_config();
  j["architectures"] = {"Qwen3MoeForCausalLM"};
  j["num_experts"] = int64_t(1) << 40;
  j["num_experts_per_tok"] = 2;
  j["moe_intermediate_size"] = 64;
  EXPECT_ERROR_NAMES(error_of([&] { ModelConfig::from_json_text(j.dump(), "c.json"); }),
                     "num_experts", "limit");
}

TEST(HostileConfig, EosOutsideInt32IsAnErrorNotAnotherToken) {
  for (const char* eos : {"4294967299", "2147483648", "18446744073709551615", "-1"}) {
    nlohmann::json j = dense_config();
    j["eos_token_id"] = nlohmann::json::parse(eos);
    EXPECT_ERROR_NAMES(error_of([&] { ModelConfig::from_json_text(j.dump(), "c.json"); }),
                       "eos_token_id");
  }
}

TEST(HostileConfig, DeeplyNestedConfigAndGenerationConfigAreErrors) {
  const std::string deep = "{\"vocab_size\": " + nested(200000) + "}";
  EXPECT_ERROR_NAMES(error_of([&] { ModelConfig::from_json_text(deep, "c.json"); }), "c.json",
                     "nested deeper than 128");
  EXPECT_ERROR_NAMES(error_of([&] { GenerationConfig::from_json_text(deep, "g.json"); }), "g.json",
                     "nested deeper than 128");
  EXPECT_ERROR_NAMES(
      error_of([&] { ChatTemplate::from_config("{\"x\": " + nested(200000) + "}", "t.json"); }),
      "t.json", "nested deeper than 128");
}

TEST(HostileConfig, NumbersPastDoublesRangeAreErrors) {
  // nlohmann throws out_of_range, not parse_error, for these (found by fuzz_config).
  EXPECT_ERROR_NAMES(
      error_of([] { ModelConfig::from_json_text(R"({"eos_token_id": [15e645]})", "c.json"); }),
      "c.json", "not valid JSON");
  EXPECT_ERROR_NAMES(
      error_of([] { GenerationConfig::from_json_text(R"({"top_p": -1e999})", "g.json"); }),
      "g.json", "not valid JSON");
  EXPECT_ERROR_NAMES(error_of([] { Tokenizer::from_json(R"({"model": 1e99999})", "t.json"); }),
                     "t.json");
}

TEST(HostileSizes, CeilDivDoesNotOverflowNearInt64Max) {
  EXPECT_EQ(ceil_div(INT64_MAX, 2), INT64_MAX / 2 + 1);
  EXPECT_EQ(ceil_div(INT64_MAX - 1, INT64_MAX), 1);
  EXPECT_EQ(ceil_div(0, 7), 0);
  EXPECT_EQ(ceil_div(14, 7), 2);
  EXPECT_EQ(ceil_div(15, 7), 3);
}

}  // namespace
}  // namespace qwen3moe
