// Chat template rendering against transformers' apply_chat_template (chat_visible.jsonl) and
// against Jinja2 itself (jinja_cases.jsonl, made by make_jinja_cases.py), plus errors for
// constructs the interpreter does not implement.
#include <gtest/gtest.h>

#include "core/text/chat_template.h"
#include "core/text/tokenizer.h"
#include "kernels/common/check.h"
#include "tokenizer_test_util.h"

namespace qwen3moe {
namespace {

using testing::fixture;
using testing::read_jsonl;

TEST(ChatTemplateReal, VisibleFixtureTextAndIdsAreExact) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const ChatTemplate tpl = ChatTemplate::load(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  const auto lines = read_jsonl(fixture("chat_visible.jsonl"));
  ASSERT_EQ(lines.size(), 12u);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& l = lines[i];
    const std::string text =
        tpl.render_json(l["messages"], l["add_generation_prompt"], l["enable_thinking"]);
    EXPECT_EQ(text, l["text"].get<std::string>()) << "line " << i + 1;
    EXPECT_EQ(tok.encode(text), l["ids"].get<std::vector<int32_t>>()) << "line " << i + 1;
    // The struct API gives the same text.
    std::vector<ChatMessage> messages;
    for (const auto& m : l["messages"]) messages.push_back({m["role"], m["content"], ""});
    EXPECT_EQ(tpl.render(messages, l["add_generation_prompt"], l["enable_thinking"]), text);
  }
}

TEST(ChatTemplateReal, ConversationsMatchJinja2) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const ChatTemplate tpl = ChatTemplate::load(dir);
  int cases = 0;
  for (const auto& l : read_jsonl(fixture("jinja_cases.jsonl"))) {
    if (!l.contains("messages")) continue;
    ++cases;
    EXPECT_EQ(tpl.render_json(l["messages"], l["add_generation_prompt"], l["enable_thinking"],
                              l["tools"]),
              l["text"].get<std::string>())
        << l["messages"].dump();
  }
  EXPECT_GT(cases, 0);
}

TEST(ChatTemplateReal, ReasoningContentField) {
  QWEN3MOE_REAL_TOKENIZER_DIR(dir);
  const ChatTemplate tpl = ChatTemplate::load(dir);
  // The last assistant turn after the last user turn keeps its reasoning; earlier ones lose it.
  const std::vector<ChatMessage> messages = {{"user", "a", ""},
                                             {"assistant", "b", "thought one"},
                                             {"user", "c", ""},
                                             {"assistant", "d", "thought two"}};
  EXPECT_EQ(tpl.render(messages, false, true),
            "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n"
            "<|im_start|>user\nc<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nthought two\n</think>\n\nd<|im_end|>\n");
}

TEST(Jinja, SmallTemplatesMatchJinja2) {
  int cases = 0;
  for (const auto& l : read_jsonl(fixture("jinja_cases.jsonl"))) {
    if (!l.contains("template")) continue;
    ++cases;
    // render_json exposes only the chat variables; small templates take theirs as messages'
    // siblings, so render them through a template that binds them first.
    std::string prefix;
    for (auto it = l["vars"].begin(); it != l["vars"].end(); ++it) {
      prefix += "{%- set " + it.key() + " = messages[0]['" + it.key() + "'] -%}";
    }
    const ChatTemplate bound = ChatTemplate::from_source(prefix + l["template"].get<std::string>());
    nlohmann::ordered_json messages = nlohmann::ordered_json::array({l["vars"]});
    messages[0]["role"] = "vars";
    EXPECT_EQ(bound.render_json(messages, false, true), l["output"].get<std::string>())
        << l["template"].get<std::string>();
  }
  EXPECT_GT(cases, 10);
}

void expect_render_error(const std::string& source, const std::string& needle) {
  try {
    const ChatTemplate tpl = ChatTemplate::from_source(source);
    tpl.render({{"user", "hi", ""}}, true, true);
    ADD_FAILURE() << "no error for " << source;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "template " << source << "\nerror " << e.what();
  }
}

TEST(Jinja, UnknownConstructsAreNamedErrors) {
  expect_render_error("{% macro m() %}x{% endmacro %}", "unsupported statement 'macro'");
  expect_render_error("a\n{% include 'x' %}",
                      "chat template line 2: unsupported statement 'include'");
  expect_render_error("{{ messages | wordcount }}", "unsupported filter 'wordcount'");
  expect_render_error("{% if messages is divisibleby(2) %}{% endif %}",
                      "unsupported test 'divisibleby'");
  expect_render_error("{{ messages[0].content.zfill(3) }}", "unsupported method 'zfill' on string");
  expect_render_error("{{ cycler() }}", "unknown function 'cycler'");
  expect_render_error("{{ raise_exception('no tools here') }}",
                      "chat template raised an exception: no tools here");
  expect_render_error("{% for m in messages %}", "missing '{% endfor %}'");
  expect_render_error("{{ nothing.attr }}", "attribute 'attr' of an undefined value");
  expect_render_error("{{ 'a' + nothing }}", "undefined value in '+'");
  expect_render_error("{{ 1 + }}", "unexpected '}}' in expression");
}

TEST(ChatTemplateConfig, MissingTemplateIsAClearError) {
  try {
    ChatTemplate::from_config("{\"eos_token\": \"x\"}", "cfg.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json: missing field chat_template"),
              std::string::npos)
        << e.what();
  }
}

TEST(ChatTemplateConfig, SpecialTokensAreVariables) {
  const ChatTemplate tpl = ChatTemplate::from_config(
      R"({"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
          "bos_token": {"content": "<s>"}, "eos_token": "</s>"})",
      "cfg.json");
  EXPECT_EQ(tpl.render({{"user", "hi", ""}}, false, true), "<s>hi</s>");
}

}  // namespace
}  // namespace qwen3moe
