// The OpenAI wire format without a server: request bodies to engine requests (types, names of
// the fields in errors, what is refused), and engine events to responses and SSE chunks (shapes,
// finish reasons, usage, logprobs layouts, the reasoning / tool-call split of chat output).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"
#include "rpc/openai/openai_request.h"
#include "rpc/openai/openai_response.h"

namespace qwen3moe::rpc::openai {
namespace {

using ojson = nlohmann::ordered_json;

RequestLimits limits() {
  RequestLimits l;
  l.vocab_size = 1000;
  l.max_context = 128;
  return l;
}

ApiError error_of(Endpoint e, const std::string& body, const RequestLimits& l = limits()) {
  try {
    parse_request(e, body, l, "tiny");
  } catch (const ApiError& err) {
    return err;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

TEST(OpenAiRequest, CompletionFieldsAndDefaults) {
  const OpenAiRequest r =
      parse_request(Endpoint::kCompletions,
                    R"({"model": "tiny", "prompt": [[5, 6, 7]], "max_tokens": 9, "temperature": 0,
          "top_k": -1, "seed": 3, "stream": true, "logprobs": 2,
          "stream_options": {"include_usage": true}, "user": "u1", "n": 1, "best_of": null})",
                    limits(), "tiny");
  const GenerationRequest& g = r.parsed.generation;
  EXPECT_EQ(g.prompt, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(g.max_new_tokens, 9);
  EXPECT_EQ(g.sampling.temperature, 0.0f);
  EXPECT_EQ(g.sampling.top_k, 0);
  EXPECT_EQ(g.sampling.seed, 3u);
  EXPECT_EQ(g.logprobs, 2);
  EXPECT_EQ(g.request_id, "u1");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_FALSE(r.parsed.chat);
}

TEST(OpenAiRequest, ErrorsAre400sNamingTheParam) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt": [1], "temperature": "warm"})", "temperature"},
      {R"({"prompt": [1], "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": [1], "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": [1], "top_p": 0})", "top_p"},
      {R"({"prompt": [1], "n": 3})", "n"},
      {R"({"prompt": [1], "echo": true})", "echo"},
      {R"({"prompt": [1], "logit_bias": {"5": 1}})", "logit_bias"},
      {R"({"prompt": [1], "suffix": "x"})", "suffix"},
      {R"({"prompt": [1], "stream": "yes"})", "stream"},
      {R"({"prompt": [1], "stop": 5})", "stop"},
      {R"({"prompt": [1], "stop": "xy"})", "stop"},  // no tokenizer, so no stop strings
      {R"({"prompt": [1], "stop_token_ids": [1, 5000]})", "stop_token_ids"},
      {R"({"prompt": [1, 1000]})", "prompt"},
      {R"({"prompt": [1, -1]})", "prompt"},
      {R"({"prompt": [[1], [2]]})", "prompt"},
      {R"({"prompt": "text"})", "prompt"},  // no tokenizer
      {R"({})", "prompt"},
      {R"({"prompt": [1], "logprobs": 21})", "logprobs"},
      {R"({"prompt": [1], "max_tokens": 128})", "max_tokens"},  // 1 + 128 > the context
  };
  for (const auto& [body, param] : cases) {
    const ApiError e = error_of(Endpoint::kCompletions, body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.param, param) << body << ": " << e.what();
    EXPECT_EQ(e.body()["error"]["type"], "invalid_request_error");
  }
  EXPECT_EQ(error_of(Endpoint::kCompletions, "[1, 2]").status, 400);
  EXPECT_EQ(error_of(Endpoint::kCompletions, "{\"prompt\": ").status, 400);
  const ApiError model = error_of(Endpoint::kCompletions, R"({"model": "big", "prompt": [1]})");
  EXPECT_EQ(model.status, 404);
  EXPECT_EQ(model.code, "model_not_found");
  // Chat-only checks come before the template is needed.
  const std::pair<const char*, const char*> chat[] = {
      {R"({"messages": []})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
       "messages[0].content"},
      {R"({"messages": [{"content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})",
       "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]})",
       "tools[0]"},
      {R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}})",
       "response_format"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"enable_thinking": 1}})",
       "chat_template_kwargs.enable_thinking"},
  };
  for (const auto& [body, param] : chat) {
    const ApiError e = error_of(Endpoint::kChatCompletions, body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.param, param) << body << ": " << e.what();
  }
}

// The real Qwen3 tokenizer and chat template, when the test script fetched them.
struct Qwen3Text {
  std::optional<Tokenizer> tokenizer;
  std::optional<ChatTemplate> chat;
};
const Qwen3Text& qwen3_text() {
  static const Qwen3Text t = [] {
    Qwen3Text out;
    const char* dir = std::getenv("QWEN3MOE_TOKENIZER_DIR");
    if (dir && std::filesystem::exists(std::filesystem::path(dir) / "tokenizer_config.json")) {
      out.tokenizer = Tokenizer::load(dir);
      out.chat = ChatTemplate::load(dir);
    }
    return out;
  }();
  return t;
}

TEST(OpenAiRequest, ChatRendersToolsHistoryAndThinking) {
  const Qwen3Text& q = qwen3_text();
  if (!q.tokenizer) GTEST_SKIP() << "QWEN3MOE_TOKENIZER_DIR is not set";
  RequestLimits l = limits();
  l.vocab_size = 151936;
  l.max_context = 4096;
  l.tokenizer = &*q.tokenizer;
  l.chat = &*q.chat;
  const std::string body = R"({
    "messages": [
      {"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Paris?"}]},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    "chat_template_kwargs": {"enable_thinking": false}, "max_completion_tokens": 7})";
  const OpenAiRequest r = parse_request(Endpoint::kChatCompletions, body, l, "tiny");
  EXPECT_TRUE(r.parsed.chat);
  EXPECT_TRUE(r.parsed.tools);
  EXPECT_FALSE(r.parsed.thinking);
  EXPECT_EQ(r.parsed.generation.max_new_tokens, 7);
  const std::string text = q.tokenizer->decode(r.parsed.generation.prompt);
  EXPECT_NE(text.find("<|im_start|>system\nBe brief."), std::string::npos) << text;
  EXPECT_NE(text.find("Weather in Paris?"), std::string::npos) << text;
  EXPECT_NE(text.find("\"name\": \"get_weather\""), std::string::npos) << text;
  EXPECT_NE(
      text.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("<tool_response>\n21 C\n</tool_response>"), std::string::npos) << text;
  // Thinking off: the template closes an empty think block in the generation prompt.
  EXPECT_NE(text.rfind("<think>\n\n</think>\n\n"), std::string::npos) << text;
  // tool_choice none: neither rendered nor parsed.
  const OpenAiRequest none =
      parse_request(Endpoint::kChatCompletions,
                    R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "none",
          "tools": [{"type": "function", "function": {"name": "f"}}]})",
                    l, "tiny");
  EXPECT_FALSE(none.parsed.tools);
  EXPECT_TRUE(none.parsed.thinking);  // unset: on
}

GenerationEvent event(std::vector<int32_t> ids, std::string text, std::string finish = "",
                      int32_t completion = 0) {
  GenerationEvent e;
  e.token_ids = std::move(ids);
  e.text = std::move(text);
  e.finish_reason = std::move(finish);
  e.prompt_tokens = 3;
  e.completion_tokens = completion;
  return e;
}

// The JSON objects of an SSE text, and whether it ended with [DONE].
std::vector<ojson> events_of(const std::string& sse, bool* done) {
  std::vector<ojson> out;
  *done = false;
  size_t at = 0;
  for (size_t end; (end = sse.find("\n\n", at)) != std::string::npos; at = end + 2) {
    const std::string line = sse.substr(at, end - at);
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << line;
    if (line == "data: [DONE]") {
      *done = true;
      continue;
    }
    out.push_back(ojson::parse(line.substr(6)));
  }
  EXPECT_EQ(at, sse.size()) << "a partial event at the end";
  return out;
}

OpenAiRequest chat_request(bool tools, bool include_usage) {
  OpenAiRequest r;
  r.endpoint = Endpoint::kChatCompletions;
  r.parsed.chat = true;
  r.parsed.thinking = true;
  r.parsed.tools = tools;
  r.include_usage = include_usage;
  return r;
}

TEST(OpenAiResponse, ChatStreamSplitsReasoningContentAndToolCalls) {
  ResponseBuilder b(chat_request(true, true), "tiny", nullptr, 42);
  std::string sse;
  sse += b.stream(event({1}, "<think>\nplan"));
  sse += b.stream(event({2}, " it\n</th"));
  sse += b.stream(event({3}, "ink>\n\nSure.<tool_call>\n{\"name\": \"f\", "));
  sse += b.stream(event({4}, "\"arguments\": {\"a\": 1}}\n</tool_call>", "stop", 4));
  bool done = false;
  const std::vector<ojson> chunks = events_of(sse, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(chunks.size(), 4u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  std::string reasoning, content;
  ojson calls = ojson::array();
  std::string finish;
  for (const ojson& c : chunks) {
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["id"], chunks[0]["id"]);
    if (c["choices"].empty()) continue;
    const ojson& d = c["choices"][0]["delta"];
    if (d.contains("reasoning_content")) reasoning += d["reasoning_content"].get<std::string>();
    if (d.contains("content")) content += d["content"].get<std::string>();
    if (d.contains("tool_calls"))
      for (const ojson& t : d["tool_calls"]) calls.push_back(t);
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(reasoning, "plan it");
  EXPECT_EQ(content, "Sure.");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["type"], "function");
  EXPECT_EQ(calls[0]["function"]["name"], "f");
  EXPECT_EQ(calls[0]["function"]["arguments"], "{\"a\":1}");
  EXPECT_EQ(calls[0]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(finish, "tool_calls");
  // The usage chunk: no choices, the counts.
  const ojson& last = chunks.back();
  EXPECT_TRUE(last["choices"].empty());
  EXPECT_EQ(last["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(last["usage"]["completion_tokens"], 4);
  EXPECT_EQ(last["usage"]["total_tokens"], 7);
}

TEST(OpenAiResponse, WholeChatAndCompletionShapes) {
  ResponseBuilder chat(chat_request(false, false), "tiny", nullptr, 1);
  chat.add(event({1, 2}, "<think>a</think>\n\nb <tool_call>x</tool_call>"));
  chat.add(event({3}, "", "length", 3));
  const ojson r = chat.response();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(r["choices"][0]["message"]["reasoning_content"], "a");
  // Tools were not offered: the block stays text.
  EXPECT_EQ(r["choices"][0]["message"]["content"], "b <tool_call>x</tool_call>");
  EXPECT_FALSE(r["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["usage"]["completion_tokens"], 3);

  OpenAiRequest c;
  c.endpoint = Endpoint::kCompletions;
  c.parsed.generation.logprobs = 1;
  ResponseBuilder completion(c, "tiny", nullptr, 2);
  GenerationEvent e = event({7, 8}, "ab", "stop", 2);
  e.logprobs = {{-0.5f, {{7, -0.5f}}}, {-1.25f, {{9, -0.25f}}}};
  completion.add(e);
  const ojson t = completion.response();
  EXPECT_EQ(t["object"], "text_completion");
  EXPECT_EQ(t["choices"][0]["text"], "ab");
  EXPECT_EQ(t["choices"][0]["finish_reason"], "stop");
  const ojson& lp = t["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], ojson::array({"token_id:7", "token_id:8"}));
  EXPECT_EQ(lp["token_logprobs"], ojson::array({-0.5, -1.25}));
  EXPECT_EQ(lp["top_logprobs"][1]["token_id:9"], -0.25);
  EXPECT_EQ(lp["text_offset"][0], 0);
}

TEST(OpenAiResponse, AnEngineErrorEndsTheStreamWithAnErrorObject) {
  OpenAiRequest c;
  c.endpoint = Endpoint::kCompletions;
  ResponseBuilder b(c, "tiny", nullptr, 3);
  GenerationEvent e = event({}, "", "error");
  e.error = "boom";
  bool done = false;
  const std::vector<ojson> chunks = events_of(b.stream(e), &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0]["error"]["type"], "internal_error");
  EXPECT_NE(chunks[0]["error"]["message"].get<std::string>().find("boom"), std::string::npos);
}

}  // namespace
}  // namespace qwen3moe::rpc::openai
