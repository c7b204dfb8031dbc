// The chat template of a Hugging Face tokenizer_config.json, rendered as transformers'
// apply_chat_template renders it (Jinja2 with trim_blocks and lstrip_blocks; messages, tools,
// add_generation_prompt, enable_thinking and the special tokens as variables), by our own
// small Jinja interpreter. Templates are parsed once at load; render is thread-safe.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3moe {

namespace jinja {
struct Template;
}

struct ChatMessage {
  std::string role, content;
  // Reasoning of an earlier assistant turn; empty means absent (the template then looks for
  // <think>...</think> inside content).
  std::string reasoning_content;
};

class ChatTemplate {
 public:
  // Reads chat_template from dir/tokenizer_config.json.
  static ChatTemplate load(const std::string& dir);
  // From the text of a tokenizer_config.json; `source` names it in errors.
  static ChatTemplate from_config(std::string_view config_json, const std::string& source);
  // From template text alone (no special-token variables).
  static ChatTemplate from_source(std::string_view template_source);

  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                     bool enable_thinking) const;
  // Messages as JSON objects, passed to the template as they are (any fields, e.g.
  // tool_calls); tools is null or a list of JSON schemas.
  std::string render_json(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                          bool enable_thinking,
                          const nlohmann::ordered_json& tools = nullptr) const;

 private:
  std::shared_ptr<const jinja::Template> template_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

}  // namespace qwen3moe
