#include "core/text/chat_template.h"

#include <fstream>
#include <sstream>

#include "core/text/jinja/interpreter.h"
#include "core/text/jinja/parser.h"
#include "core/text/utf8.h"
#include "kernels/common/check.h"
#include "kernels/common/json_depth.h"

namespace qwen3moe {

ChatTemplate ChatTemplate::load(const std::string& dir) {
  const std::string path = dir + "/tokenizer_config.json";
  std::ifstream in(path, std::ios::binary);
  QWEN3MOE_CHECK(in.good(), "cannot open ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return from_config(ss.str(), path);
}

ChatTemplate ChatTemplate::from_config(std::string_view config_json, const std::string& source) {
  nlohmann::ordered_json config;
  try {
    config = parse_json_nested_at_most<nlohmann::ordered_json>(config_json, source);
  } catch (const nlohmann::json::parse_error& e) {
    QWEN3MOE_FAIL(source, ": invalid JSON: ", e.what());
  }
  QWEN3MOE_CHECK(config.is_object(), source, ": not a JSON object");
  QWEN3MOE_CHECK(config.contains("chat_template"), source, ": missing field chat_template");
  const auto& t = config["chat_template"];
  std::string text;
  if (t.is_string()) {
    text = t.get<std::string>();
  } else if (t.is_array()) {  // named templates: use "default"
    for (const auto& named : t) {
      const bool is_default = named.is_object() && named.contains("name") &&
                              named["name"] == "default" && named.contains("template") &&
                              named["template"].is_string();
      if (is_default) text = named["template"].get<std::string>();
    }
    QWEN3MOE_CHECK(!text.empty(), source, ": chat_template has no \"default\" entry");
  } else {
    QWEN3MOE_FAIL(source, ": chat_template is neither a string nor a list");
  }
  ChatTemplate ct = from_source(text);
  // transformers passes the tokenizer's special tokens (special_tokens_map) as variables.
  for (const char* name : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                           "cls_token", "mask_token", "additional_special_tokens"}) {
    if (!config.contains(name) || config[name].is_null()) continue;
    const auto& v = config[name];
    if (v.is_object() && v.contains("content")) {
      ct.special_tokens_[name] = v["content"];
    } else {
      ct.special_tokens_[name] = v;
    }
  }
  return ct;
}

ChatTemplate ChatTemplate::from_source(std::string_view template_source) {
  utf8::check_valid(template_source, "chat template");
  ChatTemplate ct;
  ct.template_ = std::make_shared<const jinja::Template>(jinja::parse(template_source));
  return ct;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 bool add_generation_prompt, bool enable_thinking) const {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) {
    nlohmann::ordered_json j = {{"role", m.role}, {"content", m.content}};
    if (!m.reasoning_content.empty()) j["reasoning_content"] = m.reasoning_content;
    list.push_back(std::move(j));
  }
  return render_json(list, add_generation_prompt, enable_thinking);
}

std::string ChatTemplate::render_json(const nlohmann::ordered_json& messages,
                                      bool add_generation_prompt, bool enable_thinking,
                                      const nlohmann::ordered_json& tools) const {
  QWEN3MOE_CHECK(messages.is_array(), "chat: messages must be a list, not ", messages.dump());
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    QWEN3MOE_CHECK(m.is_object() && m.contains("role") && m["role"].is_string(), "chat: message ",
                   i, " has no string \"role\": ", m.dump());
    if (m.contains("content") && m["content"].is_string()) {
      utf8::check_valid(m["content"].get_ref<const std::string&>(),
                        "chat: content of message " + std::to_string(i));
    }
  }
  jinja::Dict globals;
  for (auto it = special_tokens_.begin(); it != special_tokens_.end(); ++it) {
    globals.emplace_back(it.key(), jinja::Value::from_json(it.value()));
  }
  globals.emplace_back("messages", jinja::Value::from_json(messages));
  globals.emplace_back("tools", jinja::Value::from_json(tools));
  globals.emplace_back("documents", jinja::Value::none());
  globals.emplace_back("add_generation_prompt", jinja::Value(add_generation_prompt));
  globals.emplace_back("enable_thinking", jinja::Value(enable_thinking));
  return jinja::render(*template_, globals);
}

}  // namespace qwen3moe
