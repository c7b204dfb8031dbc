// libFuzzer target: request validation. The first byte picks the endpoint of an OpenAI body
// (/v1/completions or /v1/chat/completions); the checks and defaults are the ones gRPC shares
// (rpc/api_request.h). With QWEN3MOE_TOKENIZER_DIR set, text and chat go through the real
// tokenizer and chat template.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"
#include "rpc/openai/openai_request.h"

namespace {

qwen3moe::rpc::RequestLimits& limits() {
  static qwen3moe::rpc::RequestLimits l = [] {
    qwen3moe::rpc::RequestLimits r;
    r.vocab_size = 151936;
    r.max_context = 4096;
    static std::optional<qwen3moe::Tokenizer> tok;
    static std::optional<qwen3moe::ChatTemplate> chat;
    const char* dir = std::getenv("QWEN3MOE_TOKENIZER_DIR");
    if (dir && std::filesystem::exists(std::filesystem::path(dir) / "tokenizer_config.json")) {
      tok = qwen3moe::Tokenizer::load(dir);
      chat = qwen3moe::ChatTemplate::load(dir);
      r.tokenizer = &*tok;
      r.chat = &*chat;
    }
    return r;
  }();
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    qwen3moe::rpc::openai::parse_request(data[0] % 2 == 0
                                             ? qwen3moe::rpc::openai::Endpoint::kCompletions
                                             : qwen3moe::rpc::openai::Endpoint::kChatCompletions,
                                         body, limits(), "tiny");
  } catch (const qwen3moe::rpc::openai::ApiError&) {
    // The one refusal the HTTP server turns into a 4xx: anything else escaping is a finding.
  }
  return 0;
}
