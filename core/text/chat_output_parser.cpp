#include "core/text/chat_output_parser.h"

#include <utility>

namespace qwen3moe {

ChatOutputParser::ChatOutputParser(bool thinking_enabled, bool starts_in_reasoning,
                                   bool parse_tools, uint64_t id_seed)
    : reasoning_(thinking_enabled, starts_in_reasoning),
      parse_tools_(parse_tools),
      tools_(id_seed) {}

void ChatOutputParser::add_content(ChatDelta& out, std::string content, bool at_end) {
  if (!parse_tools_) {
    out.content += content;
    return;
  }
  ToolCallDelta d = tools_.push(content);
  out.content += d.content;
  for (ToolCall& call : d.calls) out.tool_calls.push_back(std::move(call));
  if (!at_end) return;
  ToolCallDelta rest = tools_.finish();
  out.content += rest.content;
  for (ToolCall& call : rest.calls) out.tool_calls.push_back(std::move(call));
}

ChatDelta ChatOutputParser::push(std::string_view text) {
  ChatDelta out;
  ReasoningDelta r = reasoning_.push(text);
  out.reasoning = std::move(r.reasoning);
  add_content(out, std::move(r.content), /*at_end=*/false);
  return out;
}

ChatDelta ChatOutputParser::finish() {
  ChatDelta out;
  ReasoningDelta r = reasoning_.finish();
  out.reasoning = std::move(r.reasoning);
  add_content(out, std::move(r.content), /*at_end=*/true);
  return out;
}

ChatDelta parse_chat_output(std::string_view text, bool thinking_enabled, bool starts_in_reasoning,
                            bool parse_tools, uint64_t id_seed) {
  ChatOutputParser parser(thinking_enabled, starts_in_reasoning, parse_tools, id_seed);
  ChatDelta out = parser.push(text);
  ChatDelta rest = parser.finish();
  out.reasoning += rest.reasoning;
  out.content += rest.content;
  for (ToolCall& call : rest.tool_calls) out.tool_calls.push_back(std::move(call));
  return out;
}

}  // namespace qwen3moe
