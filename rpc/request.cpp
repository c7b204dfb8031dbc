#include "rpc/request.h"

#include <cmath>
#include <string>
#include <vector>

#include "kernels/common/check.h"

namespace qwen3moe::rpc {
namespace {

namespace pb = ::qwen3moe::v1;

bool known_role(const std::string& role) {
  return role == "system" || role == "user" || role == "assistant" || role == "tool";
}

// Values in messages are cut short so a huge field cannot flood a log line.
std::string shown(const std::string& s) {
  constexpr size_t kMax = 40;
  return s.size() <= kMax
             ? "'" + s + "'"
             : "'" + s.substr(0, kMax) + "...' (" + std::to_string(s.size()) + " bytes)";
}

std::vector<int32_t> input_ids(const pb::GenerateRequest& in, const RequestLimits& limits) {
  switch (in.input_case()) {
    case pb::GenerateRequest::kPrompt: {
      QWEN3MOE_CHECK(!in.prompt().empty(), "prompt is empty");
      QWEN3MOE_CHECK(limits.tokenizer != nullptr,
                     "prompt: this server has no tokenizer (send token_ids)");
      return limits.tokenizer->encode(in.prompt());
    }
    case pb::GenerateRequest::kTokenIds: {
      const auto& ids = in.token_ids().ids();
      QWEN3MOE_CHECK(!ids.empty(), "token_ids.ids is empty");
      return std::vector<int32_t>(ids.begin(), ids.end());
    }
    case pb::GenerateRequest::kChat: {
      const auto& chat = in.chat();
      QWEN3MOE_CHECK(chat.messages_size() > 0, "chat.messages is empty");
      std::vector<ChatMessage> messages;
      for (int i = 0; i < chat.messages_size(); ++i) {
        const auto& m = chat.messages(i);
        QWEN3MOE_CHECK(known_role(m.role()), "chat.messages[", i, "].role: unknown role ",
                       shown(m.role()), " (expected system, user, assistant or tool)");
        messages.push_back(ChatMessage{m.role(), m.content(), ""});
      }
      QWEN3MOE_CHECK(limits.chat != nullptr && limits.tokenizer != nullptr,
                     "chat: this server has no chat template (send prompt or token_ids)");
      const std::string text =
          limits.chat->render(messages, /*add_generation_prompt=*/true, chat.enable_thinking());
      return limits.tokenizer->encode(text);
    }
    case pb::GenerateRequest::INPUT_NOT_SET:
      break;
  }
  QWEN3MOE_FAIL("input: none of prompt, token_ids or chat is set");
}

}  // namespace

GenerationRequest to_generation_request(const pb::GenerateRequest& in,
                                        const RequestLimits& limits) {
  GenerationRequest out;
  out.request_id = in.request_id();
  const pb::SamplingParams& s = in.sampling();

  // Sampling first: it is cheap, and a bad value should not cost a tokenizer pass.
  QWEN3MOE_CHECK(
      !std::isnan(s.temperature()) && s.temperature() >= 0 && std::isfinite(s.temperature()),
      "sampling.temperature must be >= 0 and finite, got ", s.temperature());
  // 0 is proto3's "unset": the whole distribution.
  const float top_p = s.top_p() == 0.0f ? 1.0f : s.top_p();
  QWEN3MOE_CHECK(!std::isnan(top_p) && top_p > 0 && top_p <= 1,
                 "sampling.top_p must be in (0, 1] (0 means 1), got ", s.top_p());
  QWEN3MOE_CHECK(s.top_k() >= 0, "sampling.top_k must be >= 0 (0 means all), got ", s.top_k());
  QWEN3MOE_CHECK(s.max_new_tokens() >= 0, "sampling.max_new_tokens must be > 0 (0 means ",
                 kDefaultMaxNewTokens, "), got ", s.max_new_tokens());
  out.sampling.temperature = s.temperature();
  out.sampling.top_p = top_p;
  out.sampling.top_k = s.top_k();
  out.sampling.seed = s.seed();
  out.max_new_tokens = s.max_new_tokens() == 0 ? kDefaultMaxNewTokens : s.max_new_tokens();
  out.ignore_eos = s.ignore_eos();

  QWEN3MOE_CHECK(s.stop_size() <= limits.max_stop_strings, "sampling.stop: ", s.stop_size(),
                 " stop strings, at most ", limits.max_stop_strings, " allowed");
  for (int i = 0; i < s.stop_size(); ++i) {
    const std::string& stop = s.stop(i);
    QWEN3MOE_CHECK(!stop.empty(), "sampling.stop[", i, "] is empty");
    QWEN3MOE_CHECK(int64_t(stop.size()) <= limits.max_stop_length, "sampling.stop[", i, "] is ",
                   stop.size(), " bytes, at most ", limits.max_stop_length,
                   " allowed: ", shown(stop));
    QWEN3MOE_CHECK(limits.tokenizer != nullptr,
                   "sampling.stop: this server has no tokenizer, so no stop strings");
    out.stop.push_back(stop);
  }

  out.prompt = input_ids(in, limits);
  // Text and chat input can also give ids beyond a small test model's vocabulary.
  const char* field = in.has_token_ids() ? "token_ids.ids"
                      : in.has_chat()    ? "chat (encoded) id"
                                         : "prompt (encoded) id";
  for (size_t i = 0; i < out.prompt.size(); ++i) {
    const int32_t id = out.prompt[i];
    QWEN3MOE_CHECK(id >= 0 && id < limits.vocab_size, field, "[", i, "] = ", id,
                   " is outside the vocabulary [0, ", limits.vocab_size, ")");
  }
  const int64_t total = int64_t(out.prompt.size()) + out.max_new_tokens;
  QWEN3MOE_CHECK(total <= limits.max_context, "sampling.max_new_tokens = ", out.max_new_tokens,
                 " with a prompt of ", out.prompt.size(), " tokens makes ", total,
                 " tokens, beyond the context of ", limits.max_context,
                 " (max_position_embeddings)");
  return out;
}

}  // namespace qwen3moe::rpc
