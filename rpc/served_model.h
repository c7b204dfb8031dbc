// What the serving APIs know of the model they serve: its config, the parallel layout and cache
// they report, the engine's options, the text side (tokenizer, chat template) and the defaults of
// generation_config.json; and the limits every request is checked against, derived once here
// so gRPC and HTTP check alike.
#pragma once

#include <cstdint>

#include "core/checkpoint/config.h"
#include "core/checkpoint/generation_config.h"
#include "core/engine/engine.h"
#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"
#include "rpc/api_request.h"

namespace qwen3moe::rpc {

struct ServedModel {
  ModelConfig config;
  int world = 1, dp = 1, tp = 1, ep = 1;
  int64_t kv_block_size = 0, kv_total_blocks = 0;
  EngineOptions engine;
  const Tokenizer* tokenizer = nullptr;  // null: ids only
  const ChatTemplate* chat = nullptr;    // null: no chat input
  GenerationConfig generation;           // generation_config.json: defaults of unset fields
  int32_t default_max_new_tokens = kDefaultMaxNewTokens;

  RequestLimits limits() const {
    RequestLimits l;
    l.vocab_size = config.vocab_size;
    l.max_context = config.max_position_embeddings;
    l.max_stop_strings = engine.max_stop_strings;
    l.max_stop_length = engine.max_stop_length;
    l.max_stop_token_ids = engine.max_stop_token_ids - kMaxModelEosIds;
    l.default_max_new_tokens = default_max_new_tokens;
    l.tokenizer = tokenizer;
    l.chat = chat;
    l.generation = generation;
    return l;
  }
};

}  // namespace qwen3moe::rpc
