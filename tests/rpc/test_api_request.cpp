// The checks and defaults both serving APIs share (rpc/api_request.h): request value >
// generation_config.json > built-in default, errors naming the field as each API spells it, and
// generation_config.json's own validation.
#include <gtest/gtest.h>

#include "core/checkpoint/generation_config.h"
#include "rpc/api_request.h"
#include "test_util.h"

namespace qwen3moe::rpc {
namespace {

RequestLimits limits() {
  RequestLimits l;
  l.vocab_size = 100;
  l.max_context = 64;
  return l;
}

GenerationRequest make(const SamplingInput& in, const RequestLimits& l = limits(),
                       std::vector<int32_t> prompt = {1, 2, 3}) {
  return make_generation_request(in, std::move(prompt), l,
                                 FieldNames{"sampling.", "max_new_tokens", "token_ids.ids"});
}

TEST(ApiRequest, UnsetFieldsTakeTheModelsDefaultsThenTheBuiltIns) {
  const GenerationRequest plain = make({});
  EXPECT_EQ(plain.sampling.temperature, 1.0f);
  EXPECT_EQ(plain.sampling.top_p, 1.0f);
  EXPECT_EQ(plain.sampling.top_k, 0);
  EXPECT_EQ(plain.sampling.min_p, 0.0f);
  EXPECT_EQ(plain.sampling.repetition_penalty, 1.0f);
  EXPECT_EQ(plain.logprobs, -1);
  // The built-in 256 is cut to what the context (64) leaves after 3 prompt tokens.
  EXPECT_EQ(plain.max_new_tokens, 61);

  RequestLimits qwen = limits();
  qwen.generation = GenerationConfig::from_json_text(
      R"({"temperature": 0.6, "top_p": 0.95, "top_k": 20, "eos_token_id": [7, 9],
          "max_new_tokens": 10, "do_sample": true})",
      "generation_config.json");
  const GenerationRequest shipped = make({}, qwen);
  EXPECT_EQ(shipped.sampling.temperature, 0.6f);
  EXPECT_EQ(shipped.sampling.top_p, 0.95f);
  EXPECT_EQ(shipped.sampling.top_k, 20);
  EXPECT_EQ(shipped.max_new_tokens, 10);
  EXPECT_EQ(shipped.stop_token_ids, (std::vector<int32_t>{7, 9}));

  // Set fields win, 0 included (greedy, not "unset").
  SamplingInput in;
  in.temperature = 0.0f;
  in.top_k = -1;  // vLLM's "all"
  in.top_p = 0.5f;
  in.max_new_tokens = 5;
  const GenerationRequest asked = make(in, qwen);
  EXPECT_EQ(asked.sampling.temperature, 0.0f);
  EXPECT_EQ(asked.sampling.top_k, 0);
  EXPECT_EQ(asked.sampling.top_p, 0.5f);
  EXPECT_EQ(asked.max_new_tokens, 5);
}

TEST(ApiRequest, SeedsAreFreshUnlessGivenAndTheModelsEosIdsAlwaysStop) {
  SamplingInput seeded;
  seeded.seed = 5;
  EXPECT_EQ(make(seeded).sampling.seed, 5u);
  EXPECT_NE(make({}).sampling.seed, make({}).sampling.seed);
  RequestLimits l = limits();
  l.generation.eos_token_ids = {7, 9};
  SamplingInput full;
  for (int i = 0; i < l.max_stop_token_ids; ++i) full.stop_token_ids.push_back(i);
  const GenerationRequest r = make(full, l);
  ASSERT_EQ(r.stop_token_ids.size(), size_t(l.max_stop_token_ids) + 2);
  EXPECT_EQ(r.stop_token_ids.back(), 9);
  // Unset length: serve's --default-max-tokens.
  l.default_max_new_tokens = 5;
  EXPECT_EQ(make({}, l).max_new_tokens, 5);
}

TEST(ApiRequest, JsonFromClientsIsBoundedInDepthKeysAndValues) {
  auto error = [](const std::string& text) {
    try {
      parse_bounded_json(text, "tools[0]");
    } catch (const FieldError& e) {
      EXPECT_EQ(e.field, "tools[0]");
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_ERROR_NAMES(error(std::string(100000, '[') + std::string(100000, ']')), "tools[0]",
                     "deeper than 64");
  std::string wide = "{";
  for (int i = 0; i < 300; ++i) wide += (i ? ",\"k" : "\"k") + std::to_string(i) + "\": 0";
  EXPECT_ERROR_NAMES(error(wide + "}"), "more than 256 keys");
  EXPECT_ERROR_NAMES(error("{\"a\": "), "not valid JSON");
  EXPECT_EQ(error(std::string(63, '[') + std::string(63, ']')), "accepted");
  EXPECT_EQ(parse_bounded_json(R"({"b": 1, "a": [2, 3]})", "x").dump(), R"({"b":1,"a":[2,3]})");
}

TEST(ApiRequest, BadValuesNameTheFieldAsTheApiSpellsIt) {
  auto error = [](auto set, const FieldNames& names = {"sampling.", "max_new_tokens", "ids"}) {
    SamplingInput in;
    set(in);
    try {
      make_generation_request(in, {1, 2}, limits(), names);
    } catch (const FieldError& e) {
      // The field comes apart from the message too, for OpenAI's `param`.
      EXPECT_EQ(std::string(e.what()).find(e.field), 0u) << e.field << " vs " << e.what();
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_ERROR_NAMES(error([](auto& i) { i.temperature = -1.0f; }), "sampling.temperature", "-1");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.top_p = 0.0f; }), "sampling.top_p", "got 0");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.top_k = -2; }), "sampling.top_k", "-2");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.min_p = 2.0f; }), "sampling.min_p", "2");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.presence_penalty = 3.0f; }), "presence_penalty", "3");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.frequency_penalty = -2.5f; }), "frequency_penalty",
                     "-2.5");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.repetition_penalty = -1.0f; }), "repetition_penalty",
                     "-1");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.top_logprobs = 3; }), "top_logprobs", "logprobs");
  EXPECT_ERROR_NAMES(error([](auto& i) {
                       i.logprobs = true;
                       i.top_logprobs = 21;
                     }),
                     "top_logprobs", "21");
  EXPECT_ERROR_NAMES(error([](auto& i) {
                       i.stop_token_ids = {5, 100};
                     }),
                     "stop_token_ids[1]", "100");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.stop = {"x"}; }), "stop", "no tokenizer");
  // OpenAI's names: no prefix, its own name for the length.
  EXPECT_ERROR_NAMES(error([](auto& i) { i.max_new_tokens = 0; }, {"", "max_tokens", "prompt"}),
                     "max_tokens", "got 0");
  EXPECT_ERROR_NAMES(error([](auto& i) { i.max_new_tokens = 63; }, {"", "max_tokens", "prompt"}),
                     "max_tokens = 63", "65 tokens", "64");
  try {
    make_generation_request({}, {1, 100}, limits(), {"", "max_tokens", "prompt"});
    ADD_FAILURE() << "accepted an id outside the vocabulary";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field, "prompt");
    EXPECT_ERROR_NAMES(std::string(e.what()), "prompt[1] = 100", "vocabulary");
  }
}

TEST(ApiRequest, GenerationConfigErrorsNameTheFileTheFieldAndTheValue) {
  auto error = [](const char* text) {
    return testing::error_of(
        [&] { GenerationConfig::from_json_text(text, "m/generation_config.json"); });
  };
  EXPECT_ERROR_NAMES(error(R"({"temperature": "hot"})"), "m/generation_config.json", "temperature",
                     "\"hot\"");
  EXPECT_ERROR_NAMES(error(R"({"top_p": 1.5})"), "top_p", "1.5");
  EXPECT_ERROR_NAMES(error(R"({"top_p": 0})"), "top_p", "got 0");
  EXPECT_ERROR_NAMES(error(R"({"top_k": -3})"), "top_k", "-3");
  EXPECT_ERROR_NAMES(error(R"({"top_k": 1.5})"), "top_k", "integer");
  EXPECT_ERROR_NAMES(error(R"({"max_new_tokens": 99999999999})"), "max_new_tokens", "99999999999");
  EXPECT_ERROR_NAMES(error(R"({"eos_token_id": [1, -2]})"), "eos_token_id", "-2");
  EXPECT_ERROR_NAMES(error(R"({"eos_token_id": 4294967297})"), "eos_token_id", "4294967297");
  EXPECT_ERROR_NAMES(error("[1]"), "JSON object");
  EXPECT_ERROR_NAMES(error("{"), "not valid JSON");
  // A folder without the file has no defaults.
  const GenerationConfig none = GenerationConfig::load(::testing::TempDir());
  EXPECT_FALSE(none.temperature.has_value());
  EXPECT_TRUE(none.eos_token_ids.empty());
}

}  // namespace
}  // namespace qwen3moe::rpc
