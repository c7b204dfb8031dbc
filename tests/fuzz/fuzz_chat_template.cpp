// libFuzzer target: chat template source, parsed and rendered over a small chat with tools (the
// variables Qwen3's template reads).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/text/chat_template.h"
#include "kernels/common/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "reasoning_content": "need a tool",
     "tool_calls": [{"id": "c1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "21 C"}])");
  static const nlohmann::ordered_json tools = nlohmann::ordered_json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "now",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  try {
    const qwen3moe::ChatTemplate tpl = qwen3moe::ChatTemplate::from_source(source);
    tpl.render_json(messages, true, true, tools);
    tpl.render_json(messages, false, false);
  } catch (const qwen3moe::Error&) {
  }
  return 0;
}
