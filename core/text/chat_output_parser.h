// The whole post-processing of streamed Qwen3 output for the chat API: raw model text goes
// through ReasoningParser (reasoning vs content), and its content through ToolCallParser (tool
// calls vs the remaining content). Tool calls written inside the reasoning are not parsed: they
// are part of the model's thinking and stay reasoning text, as in vLLM.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/reasoning_parser.h"
#include "core/text/tool_call_parser.h"

namespace qwen3moe {

struct ChatDelta {
  std::string reasoning;             // -> delta.reasoning_content
  std::string content;               // -> delta.content
  std::vector<ToolCall> tool_calls;  // -> delta.tool_calls, each complete

  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

class ChatOutputParser {
 public:
  // thinking_enabled, starts_in_reasoning: as ReasoningParser's. parse_tools: the request offered
  // tools (otherwise `<tool_call>` text stays content). id_seed: as ToolCallParser's.
  ChatOutputParser(bool thinking_enabled, bool starts_in_reasoning, bool parse_tools,
                   uint64_t id_seed);

  // Feeds the next chunk of model output; returns what became decided.
  ChatDelta push(std::string_view text);
  // End of the output: returns what was held back.
  ChatDelta finish();

 private:
  // Passes content decided by the reasoning parser on to the tool parser (when parsing tools).
  void add_content(ChatDelta& out, std::string content, bool at_end);

  ReasoningParser reasoning_;
  bool parse_tools_;
  ToolCallParser tools_;
};

// One-shot parse of a whole output (what the pushes and finish concatenate to).
ChatDelta parse_chat_output(std::string_view text, bool thinking_enabled, bool starts_in_reasoning,
                            bool parse_tools, uint64_t id_seed);

}  // namespace qwen3moe
