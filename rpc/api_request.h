// What both serving APIs (gRPC, rpc/request.h; OpenAI HTTP, rpc/openai/) do to a request once
// its wire format is read: sampling fields merged with the model's generation_config.json and the
// built-in defaults (one set of defaults for every client), every value checked with an Error
// naming the field as that API spells it, and chat messages and tools rendered by the model's
// chat template into prompt ids.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/checkpoint/generation_config.h"
#include "core/engine/engine.h"
#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"

namespace qwen3moe::rpc {

// max_new_tokens when neither the request nor generation_config.json gives one (cut to what the
// context leaves after the prompt); serve --default-max-tokens changes it. Small because the
// engine reserves a request's whole KV (prompt + max_new_tokens) when it admits it.
inline constexpr int32_t kDefaultMaxNewTokens = 256;
// Model eos ids (generation_config.json) the request's own stop_token_ids never crowd out.
inline constexpr int32_t kMaxModelEosIds = 16;
// Bounds on what a request may hold before anything is tokenized or rendered.
inline constexpr int32_t kMaxChatMessages = 4096;
inline constexpr int32_t kMaxTools = 128;

struct RequestLimits {
  int64_t vocab_size = 0;
  int64_t max_context = 0;  // max_position_embeddings: prompt + max_new_tokens at most
  int32_t max_stop_strings = 8;
  int32_t max_stop_length = 64;     // bytes
  int32_t max_stop_token_ids = 64;  // the request's own; the model's eos ids come on top
  int32_t default_max_new_tokens = kDefaultMaxNewTokens;
  const Tokenizer* tokenizer = nullptr;  // null: only token_ids input, no stop strings
  const ChatTemplate* chat = nullptr;    // null: no chat input
  GenerationConfig generation;           // the model's defaults
};

// The sampling part of a request as the client sent it: unset is std::nullopt.
struct SamplingInput {
  std::optional<float> temperature, top_p, min_p, presence_penalty, frequency_penalty,
      repetition_penalty;
  std::optional<int64_t> top_k;
  std::optional<int64_t> max_new_tokens;
  std::optional<uint64_t> seed;  // unset: a fresh one per request, as OpenAI and vLLM draw it
  std::vector<std::string> stop;
  std::vector<int64_t> stop_token_ids;
  bool ignore_eos = false;
  bool logprobs = false;
  int64_t top_logprobs = 0;
};

// How an API names the fields in its errors ("sampling.top_p" in gRPC, "top_p" in OpenAI's).
struct FieldNames {
  std::string prefix;                             // before every sampling field
  std::string max_new_tokens = "max_new_tokens";  // the length field's own name
  std::string input = "prompt";                   // what an out-of-vocabulary id came from
};

// A bad value: the field as the API spells it ("sampling.top_p", "top_p") and the message, so
// each API can name it in its own error shape (OpenAI's `param`).
class FieldError : public std::runtime_error {
 public:
  FieldError(std::string field, const std::string& message)
      : std::runtime_error(message), field(std::move(field)) {}
  std::string field;
};

// The engine's request and how its output is to be read back.
struct ParsedRequest {
  GenerationRequest generation;
  bool chat = false;                 // chat input: the output splits into reasoning and answer
  bool thinking = false;             // enable_thinking as rendered
  bool starts_in_reasoning = false;  // the generation prompt opened the think block
  bool tools = false;                // tools were offered: <tool_call> blocks become calls
};

// Checks and merges: request value > generation_config.json > built-in default. The prompt is
// checked against the vocabulary and, with max_new_tokens, the context. Throws FieldError.
GenerationRequest make_generation_request(const SamplingInput& in, std::vector<int32_t> prompt,
                                          const RequestLimits& limits, const FieldNames& names);

// A rendered chat prompt: the ids, and whether the generation prompt opens a think block (then
// the output starts inside the reasoning).
struct ChatPrompt {
  std::vector<int32_t> ids;
  bool starts_in_reasoning = false;
};

// Messages (OpenAI's shape: role, content, reasoning_content, tool_calls, tool_call_id) and
// tools (OpenAI's list of {"type": "function", "function": {...}}; null for none) through the
// chat template with the generation prompt. `field` names the messages in errors.
ChatPrompt render_chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                       bool enable_thinking, const RequestLimits& limits, const std::string& field);

// Values in messages are cut short so a huge field cannot flood a log line.
std::string shown(const std::string& s);

// A sampling seed for a request that gave none: distinct per call of this process and per run.
uint64_t fresh_seed();

// Bounds on JSON a client sends (a request body, a tool's schema): nesting depth, keys per
// object and values in all, checked while parsing, so neither recursion over the value nor the
// ordered map's linear key search can be driven by the size of the input.
inline constexpr int kMaxJsonDepth = 64;
inline constexpr int kMaxJsonKeysPerObject = 256;
inline constexpr int64_t kMaxJsonValues = 1 << 20;
// Parses with those bounds; throws FieldError(field, ...) naming the bound or the parse error.
nlohmann::ordered_json parse_bounded_json(const std::string& text, const std::string& field);

}  // namespace qwen3moe::rpc
