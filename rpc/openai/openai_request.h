// The body of an OpenAI /v1/completions or /v1/chat/completions request turned into the
// engine's request, with OpenAI's rules: the JSON types of every field checked (a wrong type is
// a 400 naming the field), the sampling fields and their defaults shared with gRPC
// (rpc/api_request.h), chat content given as a string or as text parts, tools rendered by the
// chat template, and what this server does not do (n > 1, echo, logit_bias, forced tool
// choices, structured output) refused by name rather than silently ignored.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "rpc/api_request.h"

namespace qwen3moe::rpc::openai {

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with its HTTP
// status.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "",
           std::string type = "invalid_request_error", std::string code = "")
      : std::runtime_error(message),
        status(status),
        param(std::move(param)),
        type(std::move(type)),
        code(std::move(code)) {}
  int status;
  std::string param, type, code;
  nlohmann::ordered_json body() const;
};

enum class Endpoint { kCompletions, kChatCompletions };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  ParsedRequest parsed;  // the engine's request and how to read its output
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
};

// Throws ApiError (400 for a bad body or value, 404 for a model this server does not serve).
OpenAiRequest parse_request(Endpoint endpoint, const std::string& body, const RequestLimits& limits,
                            const std::string& served_model);

}  // namespace qwen3moe::rpc::openai
