#include "rpc/openai/openai_response.h"

#include <chrono>
#include <cstdio>
#include <utility>

#include "kernels/common/random_hash.h"

namespace qwen3moe::rpc::openai {
namespace {

using ojson = nlohmann::ordered_json;

// OpenAI's ids: a prefix and 24 hex digits, distinct per request of this process.
std::string response_id(const char* prefix, uint64_t seed) {
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%016llx%08llx",
                static_cast<unsigned long long>(splitmix64(seed)),
                static_cast<unsigned long long>(seed & 0xffffffffull));
  return std::string(prefix) + hex;
}

ojson tool_call_json(const ToolCall& c, int index, bool with_index) {
  ojson j = ojson::object();
  if (with_index) j["index"] = index;
  j["id"] = c.id;
  j["type"] = "function";
  j["function"] = {{"name", c.name}, {"arguments", c.arguments}};
  return j;
}

}  // namespace

std::optional<ApiError> early_end_error(const GenerationEvent& last) {
  const std::string& r = last.finish_reason;
  if (r == "stop" || r == "length") return std::nullopt;
  if (r == "error") return ApiError(500, "the engine failed: " + last.error, "", "internal_error");
  return ApiError(503, "the request ended early: " + r + " (the server is shutting down)", "",
                  "service_unavailable");
}

std::string dump(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string sse(const ojson& j) {
  return "data: " + dump(j) + "\n\n";
}

ResponseBuilder::ResponseBuilder(const OpenAiRequest& request, std::string model,
                                 const Tokenizer* tokenizer, uint64_t id_seed)
    : endpoint_(request.endpoint),
      include_usage_(request.include_usage),
      logprobs_(request.parsed.generation.logprobs >= 0),
      model_(std::move(model)),
      created_(std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()),
      tokenizer_(tokenizer) {
  const bool chat = endpoint_ == Endpoint::kChatCompletions;
  id_ = response_id(chat ? "chatcmpl-" : "cmpl-", id_seed);
  const ParsedRequest& p = request.parsed;
  if (chat) parser_.emplace(p.thinking, p.starts_in_reasoning, p.tools, id_seed ^ 0x5bd1e995ull);
  logprobs_all_ = chat ? ojson{{"content", ojson::array()}}
                       : ojson{{"tokens", ojson::array()},
                               {"token_logprobs", ojson::array()},
                               {"top_logprobs", ojson::array()},
                               {"text_offset", ojson::array()}};
}

ChatDelta ResponseBuilder::parse(const GenerationEvent& e) {
  prompt_tokens_ = std::max(prompt_tokens_, e.prompt_tokens);
  completion_tokens_ += int32_t(e.token_ids.size());
  if (!e.finish_reason.empty()) completion_tokens_ = e.completion_tokens;
  add_logprobs(e);
  ChatDelta d;
  if (!parser_) {
    d.content = e.text;
    return d;
  }
  d = parser_->push(e.text);
  if (!e.finish_reason.empty()) {
    ChatDelta rest = parser_->finish();
    d.reasoning += rest.reasoning;
    d.content += rest.content;
    for (ToolCall& c : rest.tool_calls) d.tool_calls.push_back(std::move(c));
  }
  return d;
}

void ResponseBuilder::add_logprobs(const GenerationEvent& e) {
  const bool chat = endpoint_ == Endpoint::kChatCompletions;
  logprobs_step_ = chat ? ojson{{"content", ojson::array()}}
                        : ojson{{"tokens", ojson::array()},
                                {"token_logprobs", ojson::array()},
                                {"top_logprobs", ojson::array()},
                                {"text_offset", ojson::array()}};
  if (!logprobs_) return;
  auto spelled = [&](int32_t id) {
    return tokenizer_ ? std::string(tokenizer_->token_bytes(id)) : "token_id:" + std::to_string(id);
  };
  auto bytes = [](const std::string& s) {
    ojson b = ojson::array();
    for (const unsigned char c : s) b.push_back(int(c));
    return b;
  };
  for (size_t i = 0; i < e.logprobs.size() && i < e.token_ids.size(); ++i) {
    const TokenLogprobs& lp = e.logprobs[i];
    const std::string token = spelled(e.token_ids[i]);
    if (chat) {
      ojson top = ojson::array();
      for (const auto& [id, logprob] : lp.top) {
        const std::string t = spelled(id);
        top.push_back({{"token", t}, {"logprob", logprob}, {"bytes", bytes(t)}});
      }
      ojson entry = {{"token", token},
                     {"logprob", lp.logprob},
                     {"bytes", bytes(token)},
                     {"top_logprobs", std::move(top)}};
      logprobs_step_["content"].push_back(entry);
      logprobs_all_["content"].push_back(std::move(entry));
    } else {
      ojson top = ojson::object();
      for (const auto& [id, logprob] : lp.top) top[spelled(id)] = logprob;
      for (ojson* l : {&logprobs_step_, &logprobs_all_}) {
        (*l)["tokens"].push_back(token);
        (*l)["token_logprobs"].push_back(lp.logprob);
        (*l)["top_logprobs"].push_back(top);
        (*l)["text_offset"].push_back(text_offset_);
      }
      text_offset_ += int64_t(token.size());
    }
  }
}

std::string ResponseBuilder::finish_reason(const std::string& engine_reason) const {
  if (engine_reason == "stop" && !tool_calls_.empty()) return "tool_calls";
  return engine_reason;
}

ojson ResponseBuilder::usage() const {
  return {{"prompt_tokens", prompt_tokens_},
          {"completion_tokens", completion_tokens_},
          {"total_tokens", prompt_tokens_ + completion_tokens_}};
}

ojson ResponseBuilder::chunk(ojson choice) const {
  const bool chat = endpoint_ == Endpoint::kChatCompletions;
  ojson j = {{"id", id_},
             {"object", chat ? "chat.completion.chunk" : "text_completion"},
             {"created", created_},
             {"model", model_},
             {"choices", ojson::array()}};
  if (!choice.is_null()) j["choices"].push_back(std::move(choice));
  return j;
}

std::string ResponseBuilder::stream(const GenerationEvent& e) {
  const bool chat = endpoint_ == Endpoint::kChatCompletions;
  const bool last = !e.finish_reason.empty();
  if (last) {
    // Cancelled by a shutdown, past a deadline, or an engine error: the stream ends with an
    // error object (the status line went out with the first chunk).
    if (const auto err = early_end_error(e)) return sse(err->body()) + "data: [DONE]\n\n";
  }
  ChatDelta d = parse(e);
  for (const ToolCall& c : d.tool_calls) tool_calls_.push_back(c);
  std::string out;
  const ojson lp = logprobs_ && !e.token_ids.empty() ? logprobs_step_ : ojson(nullptr);
  if (chat) {
    if (!sent_role_) {
      sent_role_ = true;
      out += sse(chunk({{"index", 0},
                        {"delta", {{"role", "assistant"}, {"content", ""}}},
                        {"logprobs", nullptr},
                        {"finish_reason", nullptr}}));
    }
    ojson delta = ojson::object();
    if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
    if (!d.content.empty()) delta["content"] = d.content;
    if (!d.tool_calls.empty()) {
      ojson calls = ojson::array();
      for (const ToolCall& c : d.tool_calls)
        calls.push_back(tool_call_json(c, tool_calls_sent_++, true));
      delta["tool_calls"] = std::move(calls);
    }
    if (!delta.empty() || !lp.is_null())
      out += sse(
          chunk({{"index", 0}, {"delta", delta}, {"logprobs", lp}, {"finish_reason", nullptr}}));
    if (last)
      out += sse(chunk({{"index", 0},
                        {"delta", ojson::object()},
                        {"logprobs", nullptr},
                        {"finish_reason", finish_reason(e.finish_reason)}}));
  } else {
    if (!d.content.empty() || !lp.is_null() || last)
      out += sse(chunk(
          {{"index", 0},
           {"text", d.content},
           {"logprobs", lp},
           {"finish_reason", last ? ojson(finish_reason(e.finish_reason)) : ojson(nullptr)}}));
  }
  if (last) {
    if (include_usage_) {
      ojson u = chunk(nullptr);
      u["usage"] = usage();
      out += sse(u);
    }
    out += "data: [DONE]\n\n";
  }
  return out;
}

void ResponseBuilder::add(const GenerationEvent& e) {
  ChatDelta d = parse(e);
  text_ += d.content;
  reasoning_ += d.reasoning;
  for (ToolCall& c : d.tool_calls) tool_calls_.push_back(std::move(c));
  if (!e.finish_reason.empty()) finish_ = e.finish_reason;
}

ojson ResponseBuilder::response() const {
  const bool chat = endpoint_ == Endpoint::kChatCompletions;
  ojson choice = {{"index", 0}};
  if (chat) {
    ojson message = {
        {"role", "assistant"},
        {"content", text_.empty() && !tool_calls_.empty() ? ojson(nullptr) : ojson(text_)}};
    if (!reasoning_.empty()) message["reasoning_content"] = reasoning_;
    if (!tool_calls_.empty()) {
      ojson calls = ojson::array();
      for (size_t i = 0; i < tool_calls_.size(); ++i)
        calls.push_back(tool_call_json(tool_calls_[i], int(i), false));
      message["tool_calls"] = std::move(calls);
    }
    choice["message"] = std::move(message);
  } else {
    choice["text"] = text_;
  }
  choice["logprobs"] = logprobs_ ? logprobs_all_ : ojson(nullptr);
  choice["finish_reason"] = finish_reason(finish_);
  ojson j = {{"id", id_},
             {"object", chat ? "chat.completion" : "text_completion"},
             {"created", created_},
             {"model", model_},
             {"choices", ojson::array({std::move(choice)})},
             {"usage", usage()}};
  return j;
}

}  // namespace qwen3moe::rpc::openai
