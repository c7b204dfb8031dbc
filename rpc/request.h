// A GenerateRequest off the wire turned into the engine's GenerationRequest (rpc/api_request.h
// does the checks and the defaults shared with the OpenAI API): every field checked against the
// model (vocabulary, context, tokenizer, chat template) so that a bad request is refused before
// it reaches the engine, with an Error naming the proto field and its value (the service answers
// it with INVALID_ARGUMENT).
#pragma once

#include "core/engine/engine.h"
#include "rpc/api_request.h"
#include "rpc/qwen3moe.pb.h"

namespace qwen3moe::rpc {

// Throws Error naming the field (e.g. "sampling.top_p") and the value.
ParsedRequest to_generation_request(const ::qwen3moe::v1::GenerateRequest& in,
                                    const RequestLimits& limits);

}  // namespace qwen3moe::rpc
