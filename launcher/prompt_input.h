// The three ways a user gives a prompt (ids, text, chat messages) turned into token ids, with
// the tokenizer and chat template of a model folder.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"

namespace qwen3moe::launcher {

struct PromptInput {
  std::string ids;        // "1,2,3"
  std::string text;       // raw text, no template
  std::string chat_file;  // JSON: [messages] or {"messages": [...], "enable_thinking": bool}
  bool no_thinking = false;
};

// A chat file's messages and its enable_thinking (true unless the file or --no-thinking says
// otherwise). Errors name the file and the bad entry (e.g. an unknown role).
struct ChatInput {
  std::vector<ChatMessage> messages;
  bool enable_thinking = true;
};
ChatInput read_chat_file(const std::string& path);

// Exactly one of ids / text / chat must be set. tokenizer is needed for text and chat.
std::vector<int32_t> prompt_ids(const PromptInput& in, const std::optional<Tokenizer>& tokenizer,
                                const std::string& tokenizer_dir);

}  // namespace qwen3moe::launcher
