// Engine events of one request turned into OpenAI's response objects: a whole completion /
// chat.completion for a plain request, or the server-sent-event chunks of a streamed one
// (text_completion / chat.completion.chunk, then a usage chunk when asked, then [DONE]). Chat
// output goes through the Qwen3 parsers (reasoning_content, content, tool_calls), and token
// logprobs are written in each endpoint's own layout.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/engine/engine.h"
#include "core/text/chat_output_parser.h"
#include "core/text/tokenizer.h"
#include "rpc/openai/openai_request.h"

namespace qwen3moe::rpc::openai {

class ResponseBuilder {
 public:
  // tokenizer (may be null) spells the logprobs' tokens; id_seed makes the tool-call ids.
  ResponseBuilder(const OpenAiRequest& request, std::string model, const Tokenizer* tokenizer,
                  uint64_t id_seed);

  // Streamed: the SSE text ("data: {...}\n\n" lines) this event adds; on the last event also
  // the final chunk, the usage chunk and "data: [DONE]". An event that ends in an engine error
  // gives an error object in OpenAI's shape instead of a finish.
  std::string stream(const GenerationEvent& e);
  // Not streamed: folds the event in; response() once the last one came.
  void add(const GenerationEvent& e);
  nlohmann::ordered_json response() const;

  // OpenAI's finish_reason for the engine's: a chat that called tools stops with "tool_calls".
  std::string finish_reason(const std::string& engine_reason) const;
  const std::string& id() const { return id_; }

 private:
  // The event's text through the chat parser (flushed on the last event); logprobs added.
  ChatDelta parse(const GenerationEvent& e);
  nlohmann::ordered_json chunk(nlohmann::ordered_json choice) const;
  nlohmann::ordered_json usage() const;
  void add_logprobs(const GenerationEvent& e);

  Endpoint endpoint_;
  bool include_usage_;
  bool logprobs_;
  std::string id_, model_;
  int64_t created_;
  const Tokenizer* tokenizer_;
  std::optional<ChatOutputParser> parser_;
  bool sent_role_ = false;
  int32_t prompt_tokens_ = 0, completion_tokens_ = 0;
  // Whole response (not streamed) and the logprobs of the current stream chunk.
  std::string text_, reasoning_;
  std::vector<ToolCall> tool_calls_;
  int tool_calls_sent_ = 0;
  nlohmann::ordered_json logprobs_all_, logprobs_step_;
  int64_t text_offset_ = 0;
  std::string finish_;
};

// The error a request's last event stands for when it did not finish by itself ("stop" or
// "length"): 503 for a shutdown's cancel or a passed deadline, 500 for an engine error.
std::optional<ApiError> early_end_error(const GenerationEvent& last);

// "data: " + JSON + "\n\n", the JSON dumped with invalid UTF-8 replaced (token spellings can be
// parts of a character).
std::string sse(const nlohmann::ordered_json& j);
std::string dump(const nlohmann::ordered_json& j);

}  // namespace qwen3moe::rpc::openai
