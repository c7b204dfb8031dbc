#include "launcher/prompt_input.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/common/check.h"
#include "kernels/common/json_depth.h"
#include "launcher/runtime.h"

namespace qwen3moe::launcher {

ChatInput read_chat_file(const std::string& path) {
  std::ifstream in(path);
  QWEN3MOE_CHECK(in.good(), "--chat: cannot open ", path);
  nlohmann::json j;
  try {
    j = parse_json_nested_at_most<nlohmann::json>(in, "--chat: " + path);
  } catch (const nlohmann::json::parse_error& e) {
    QWEN3MOE_FAIL("--chat: ", path, " is not valid JSON (", e.what(), ")");
  }
  ChatInput chat;
  const nlohmann::json* messages = &j;
  if (j.is_object()) {
    QWEN3MOE_CHECK(j.contains("messages"), "--chat: ", path, " has no 'messages'");
    messages = &j["messages"];
    if (j.contains("enable_thinking")) {
      QWEN3MOE_CHECK(j["enable_thinking"].is_boolean(), "--chat: ", path,
                     ": enable_thinking must be true or false, got ", j["enable_thinking"].dump());
      chat.enable_thinking = j["enable_thinking"].get<bool>();
    }
  }
  QWEN3MOE_CHECK(messages->is_array() && !messages->empty(), "--chat: ", path,
                 ": messages must be a non-empty list");
  for (size_t i = 0; i < messages->size(); ++i) {
    const nlohmann::json& m = (*messages)[i];
    QWEN3MOE_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() &&
                       m.contains("content") && m["content"].is_string(),
                   "--chat: ", path, ": message ", i, " needs string 'role' and 'content'");
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    QWEN3MOE_CHECK(
        msg.role == "system" || msg.role == "user" || msg.role == "assistant" || msg.role == "tool",
        "--chat: ", path, ": message ", i, " has unknown role '", msg.role,
        "' (expected system, user, assistant or tool)");
    msg.content = m["content"].get<std::string>();
    if (m.contains("reasoning_content") && m["reasoning_content"].is_string())
      msg.reasoning_content = m["reasoning_content"].get<std::string>();
    chat.messages.push_back(std::move(msg));
  }
  return chat;
}

std::vector<int32_t> prompt_ids(const PromptInput& in, const std::optional<Tokenizer>& tokenizer,
                                const std::string& tokenizer_dir) {
  const int given = int(!in.ids.empty()) + int(!in.text.empty()) + int(!in.chat_file.empty());
  QWEN3MOE_CHECK(given == 1, "give exactly one of --ids, --prompt or --chat");
  if (!in.ids.empty()) return parse_ids(in.ids);
  QWEN3MOE_CHECK(tokenizer.has_value(), "--prompt and --chat need tokenizer.json in ",
                 tokenizer_dir, " (or --tokenizer DIR)");
  if (!in.text.empty()) return tokenizer->encode(in.text);
  ChatInput chat = read_chat_file(in.chat_file);
  if (in.no_thinking) chat.enable_thinking = false;
  const ChatTemplate tmpl = ChatTemplate::load(tokenizer_dir);
  return tokenizer->encode(tmpl.render(chat.messages, true, chat.enable_thinking));
}

}  // namespace qwen3moe::launcher
