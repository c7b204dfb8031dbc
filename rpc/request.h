// A GenerateRequest off the wire turned into the engine's GenerationRequest: every field checked
// against the model (vocabulary, context, tokenizer, chat template) so that a bad request is
// refused before it reaches the engine, with an Error naming the proto field and its value
// (the service answers it with INVALID_ARGUMENT).
#pragma once

#include <cstdint>

#include "core/engine/engine.h"
#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"
#include "rpc/qwen3moe.pb.h"

namespace qwen3moe::rpc {

// proto3 cannot tell an unset number from 0: max_new_tokens 0 means this many.
inline constexpr int32_t kDefaultMaxNewTokens = 256;

struct RequestLimits {
  int64_t vocab_size = 0;
  int64_t max_context = 0;  // max_position_embeddings: prompt + max_new_tokens at most
  int32_t max_stop_strings = 8;
  int32_t max_stop_length = 64;          // bytes
  const Tokenizer* tokenizer = nullptr;  // null: only token_ids input, no stop strings
  const ChatTemplate* chat = nullptr;    // null: no chat input
};

// Throws Error naming the field (e.g. "sampling.top_p") and the value.
GenerationRequest to_generation_request(const ::qwen3moe::v1::GenerateRequest& in,
                                        const RequestLimits& limits);

}  // namespace qwen3moe::rpc
