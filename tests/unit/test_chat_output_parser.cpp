// Streaming reasoning / tool-call parsing of Qwen3 output: fixed outputs give the reasoning,
// content and calls vLLM's qwen3 reasoning parser and hermes tool parser give, and cutting any
// of them into pushes at every byte position (and every pair of positions) concatenates to the
// one-shot parse, so a tag cut across tokens is never emitted early or in parts.
#include <gtest/gtest.h>

#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/chat_output_parser.h"
#include "core/text/reasoning_parser.h"
#include "core/text/tool_call_parser.h"

namespace qwen3moe {

// For readable failures (gtest finds it by argument-dependent lookup).
void PrintTo(const ToolCall& call, std::ostream* os) {
  *os << "{" << call.id << ", " << call.name << ", " << call.arguments << "}";
}

namespace {

// Every way of cutting text into pushes that the tests try: two pieces at every position, three
// pieces at every pair of positions (empty pieces included), and one byte per push.
std::vector<std::vector<std::string_view>> all_cuts(std::string_view text) {
  std::vector<std::vector<std::string_view>> cuts;
  const size_t n = text.size();
  for (size_t i = 0; i <= n; ++i) cuts.push_back({text.substr(0, i), text.substr(i)});
  for (size_t i = 0; i <= n; ++i) {
    for (size_t j = i; j <= n; ++j) {
      cuts.push_back({text.substr(0, i), text.substr(i, j - i), text.substr(j)});
    }
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < n; ++i) bytes.push_back(text.substr(i, 1));
  cuts.push_back(bytes);
  return cuts;
}

std::string describe(const std::vector<std::string_view>& pieces) {
  std::string s;
  for (std::string_view p : pieces) s += "[" + std::string(p) + "]";
  return s;
}

ReasoningDelta stream_reasoning(const std::vector<std::string_view>& pieces, bool enabled,
                                bool starts_in_reasoning) {
  ReasoningParser parser(enabled, starts_in_reasoning);
  ReasoningDelta all;
  for (std::string_view p : pieces) {
    const ReasoningDelta d = parser.push(p);
    all.reasoning += d.reasoning;
    all.content += d.content;
  }
  const ReasoningDelta d = parser.finish();
  all.reasoning += d.reasoning;
  all.content += d.content;
  return all;
}

ToolCallDelta stream_tools(const std::vector<std::string_view>& pieces, uint64_t seed) {
  ToolCallParser parser(seed);
  ToolCallDelta all;
  auto add = [&all](const ToolCallDelta& d) {
    all.content += d.content;
    all.calls.insert(all.calls.end(), d.calls.begin(), d.calls.end());
  };
  for (std::string_view p : pieces) add(parser.push(p));
  add(parser.finish());
  return all;
}

ChatDelta stream_chat(const std::vector<std::string_view>& pieces, bool thinking,
                      bool starts_in_reasoning, bool tools, uint64_t seed) {
  ChatOutputParser parser(thinking, starts_in_reasoning, tools, seed);
  ChatDelta all;
  auto add = [&all](const ChatDelta& d) {
    all.reasoning += d.reasoning;
    all.content += d.content;
    all.tool_calls.insert(all.tool_calls.end(), d.tool_calls.begin(), d.tool_calls.end());
  };
  for (std::string_view p : pieces) add(parser.push(p));
  add(parser.finish());
  return all;
}

void expect_split(std::string_view text, bool enabled, bool starts_in_reasoning,
                  std::string_view reasoning, std::string_view content) {
  const ReasoningDelta d = split_reasoning(text, enabled, starts_in_reasoning);
  EXPECT_EQ(d.reasoning, reasoning) << text;
  EXPECT_EQ(d.content, content) << text;
}

// Outputs that exercise every state of the parsers: tags, whitespace next to them, near-tags,
// unterminated blocks, multibyte characters next to tags.
const std::vector<std::string> kOutputs = {
    "Hello world",
    "<think>\nLet me think.\n</think>\n\nThe answer is 4.",
    "  \n<think>\n\n a \n b \n</think>\n\n c \n",
    "Let me think.\n</think>\n\nAnswer",
    "<think>\nstill thinking \n",
    "<think>a </thi",
    "<think></think>",
    "\n<thin",
    "x <think>y</think> z",
    "<think>\xe6\x80\x9d\xe8\x80\x83 \xf0\x9f\x99\x82</think>\xe7\xad\x94\xf0\x9f\x99\x82 <\xe6",
    "<think>\n<tool_call>{\"name\": \"a\"}</tool_call> </th </think>\n"
    "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
    "</tool_call>\n<tool_call>\n{\"name\": \"f\"}\n</tool_call>\n",
    "a<tool_call>{bad}</tool_call>\n<tool_call>{\"name\":\"g\",\"arguments\":\"{}\"}</tool_call>"
    " b <tool_c",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"k\": [1, 2]}}\n",
    "<tool_call>\n{\"name\": \"f\", \"argu",
};

// ---- ReasoningParser ----

TEST(ReasoningParser, PlainContent) {
  expect_split("Hello world", true, false, "", "Hello world");
  expect_split("", true, false, "", "");
}

TEST(ReasoningParser, ThinkingWithAnswer) {
  expect_split("<think>\nLet me think.\n</think>\n\nThe answer is 4.", true, false, "Let me think.",
               "The answer is 4.");
  expect_split("<think></think>answer", true, false, "", "answer");
  expect_split("<think>\n\n</think>\n\nanswer", true, false, "", "answer");
}

TEST(ReasoningParser, DisabledLeavesEverythingContent) {
  const std::string text = "<think>\nx\n</think>\n\ny";
  expect_split(text, false, false, "", text);
  expect_split(text, false, true, "", text);  // disabled wins over starts_in_reasoning
}

TEST(ReasoningParser, StartsInReasoning) {
  expect_split("Let me think.\n</think>\n\nAnswer", true, true, "Let me think.", "Answer");
  // A `<think>` the model repeats anyway is dropped, once.
  expect_split("\n<think>\nLet me think.\n</think>\n\nAnswer", true, true, "Let me think.",
               "Answer");
  expect_split("a <think> b</think>c", true, true, "a <think> b", "c");
  expect_split("<thinking>a</think>c", true, true, "<thinking>a", "c");
}

TEST(ReasoningParser, UnterminatedThinkIsReasoning) {
  expect_split("<think>\nstill thinking\n", true, false, "still thinking", "");
  expect_split("<think>a </thi", true, false, "a </thi", "");
  expect_split("still thinking  ", true, true, "still thinking", "");
  expect_split("<think>", true, false, "", "");
}

TEST(ReasoningParser, Whitespace) {
  expect_split("  \n<think>\n\n a \n b \n</think>\n\n c \n", true, false, "a \n b", "c \n");
  // Not a think block: the leading whitespace is content too.
  expect_split("\n\nHello", true, false, "", "\n\nHello");
  expect_split("  \n", true, false, "", "  \n");
  // Whitespace after </think> with nothing else: no content.
  expect_split("<think>a</think>\n\n", true, false, "a", "");
}

TEST(ReasoningParser, ThinkOnlyAtTheStartOpensReasoning) {
  expect_split("x <think>y</think> z", true, false, "", "x <think>y</think> z");
  expect_split("<thinking>x", true, false, "", "<thinking>x");
  expect_split("\n<thin", true, false, "", "\n<thin");
  // After the reasoning, tags are plain content.
  expect_split("<think>a</think>b<think>c</think>", true, false, "a", "b<think>c</think>");
}

TEST(ReasoningParser, EmitsAsSoonAsDecided) {
  ReasoningParser p(true);
  ReasoningDelta d = p.push("\n");
  EXPECT_EQ(d.reasoning + d.content, "");  // could still be whitespace before <think>
  d = p.push("<thi");
  EXPECT_EQ(d.reasoning + d.content, "");
  d = p.push("nk>\nabc");
  EXPECT_EQ(d.reasoning, "abc");
  d = p.push(" \n");
  EXPECT_EQ(d.reasoning, "");  // held: stripped if </think> follows
  d = p.push("def </");
  EXPECT_EQ(d.reasoning, " \ndef");
  d = p.push("b>");  // not the tag after all
  EXPECT_EQ(d.reasoning, " </b>");
  d = p.push("\n</thi");
  EXPECT_EQ(d.reasoning, "");
  d = p.push("nk>\n\n");
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "");
  EXPECT_TRUE(p.in_content());
  d = p.push("Answer");
  EXPECT_EQ(d.content, "Answer");
  d = p.finish();
  EXPECT_EQ(d.reasoning + d.content, "");

  // Not a think block: the held whitespace comes out with the first text.
  ReasoningParser q(true);
  EXPECT_EQ(q.push("\n ").content, "");
  EXPECT_EQ(q.push("<t").content, "");
  EXPECT_EQ(q.push("o").content, "\n <to");
  EXPECT_TRUE(q.in_content());
}

TEST(ReasoningParser, EverySplitMatchesOneShot) {
  for (const std::string& text : kOutputs) {
    for (bool enabled : {true, false}) {
      for (bool starts : {false, true}) {
        const ReasoningDelta whole = split_reasoning(text, enabled, starts);
        for (const auto& pieces : all_cuts(text)) {
          const ReasoningDelta got = stream_reasoning(pieces, enabled, starts);
          ASSERT_EQ(got.reasoning, whole.reasoning) << describe(pieces) << enabled << starts;
          ASSERT_EQ(got.content, whole.content) << describe(pieces) << enabled << starts;
        }
      }
    }
  }
}

TEST(ReasoningParser, Utf8AroundTagsUnchanged) {
  // Reasoning "思考 🙂", content "答🙂 <" and a cut character: the bytes pass as they are.
  expect_split(
      "<think>\xe6\x80\x9d\xe8\x80\x83 \xf0\x9f\x99\x82</think>\xe7\xad\x94\xf0\x9f\x99\x82 <\xe6",
      true, false, "\xe6\x80\x9d\xe8\x80\x83 \xf0\x9f\x99\x82",
      "\xe7\xad\x94\xf0\x9f\x99\x82 <\xe6");
}

// ---- ToolCallParser ----

constexpr uint64_t kSeed = 1234;

TEST(ToolCallParser, PlainContent) {
  const ToolCallDelta d = parse_tool_calls("Hello <tool> world", kSeed);
  EXPECT_EQ(d.content, "Hello <tool> world");
  EXPECT_TRUE(d.calls.empty());
  EXPECT_EQ(parse_tool_calls("a <tool_ca", kSeed).content, "a <tool_ca");
}

TEST(ToolCallParser, TwoCallsWithTextBefore) {
  const ToolCallDelta d = parse_tool_calls(
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": "
      "\"CET\", \"a\": 1}}\n</tool_call>\n",
      kSeed);
  EXPECT_EQ(d.content, "Let me check.\n");
  ASSERT_EQ(d.calls.size(), 2u);
  EXPECT_EQ(d.calls[0].name, "get_weather");
  EXPECT_EQ(d.calls[0].arguments, "{\"city\":\"Paris\"}");
  EXPECT_EQ(d.calls[1].name, "get_time");
  EXPECT_EQ(d.calls[1].arguments, "{\"tz\":\"CET\",\"a\":1}");  // the model's key order
}

TEST(ToolCallParser, WhitespaceBetweenAndAfterCalls) {
  const std::string call = "<tool_call>\n{\"name\": \"f\"}\n</tool_call>";
  EXPECT_EQ(parse_tool_calls(call + "\n" + call + "\n", kSeed).content, "");
  EXPECT_EQ(parse_tool_calls(call + " \n\n" + call + "\n\n", kSeed).calls.size(), 2u);
  // Whitespace before text after a call stays with the text.
  EXPECT_EQ(parse_tool_calls(call + "\n\nDone.", kSeed).content, "\n\nDone.");
  EXPECT_EQ(parse_tool_calls("A " + call + "\nB" + call, kSeed).content, "A \nB");
  // ...and before a block that is passed through.
  EXPECT_EQ(parse_tool_calls(call + "\n<tool_call>x</tool_call>", kSeed).content,
            "\n<tool_call>x</tool_call>");
  // Before the first call it is kept.
  EXPECT_EQ(parse_tool_calls("\n\n" + call, kSeed).content, "\n\n");
}

TEST(ToolCallParser, BadBlocksPassThroughVerbatim) {
  for (const std::string text : {
           "x <tool_call>\n{bad json}\n</tool_call> y",
           "<tool_call>{\"arguments\": {}}</tool_call>",  // no name
           "<tool_call>{\"name\": 3}</tool_call>",        // name not a string
           "<tool_call>{\"name\": \"\"}</tool_call>",     // empty name
           "<tool_call>[{\"name\": \"f\"}]</tool_call>",  // not an object
           "<tool_call>{\"name\": \"f\"} x</tool_call>",  // trailing text
           "<tool_call></tool_call>",                     // empty
       }) {
    const ToolCallDelta d = parse_tool_calls(text, kSeed);
    EXPECT_EQ(d.content, text);
    EXPECT_TRUE(d.calls.empty()) << text;
  }
}

TEST(ToolCallParser, Arguments) {
  auto args = [](const std::string& json) {
    const ToolCallDelta d = parse_tool_calls("<tool_call>" + json + "</tool_call>", kSeed);
    EXPECT_EQ(d.calls.size(), 1u) << json;
    return d.calls.empty() ? std::string("<none>") : d.calls[0].arguments;
  };
  EXPECT_EQ(args("{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}"), "{\"x\": 1}");  // string
  EXPECT_EQ(args("{\"name\": \"f\"}"), "{}");                                             // missing
  EXPECT_EQ(args("{\"name\": \"f\", \"arguments\": null}"), "{}");                        // null
  EXPECT_EQ(args("{\"name\": \"f\", \"arguments\": {\"b\": [1, 2.5], \"a\": {\"c\": true}}}"),
            "{\"b\":[1,2.5],\"a\":{\"c\":true}}");
  // Arguments before the name.
  EXPECT_EQ(args("{\"arguments\": {\"q\": \"x\"}, \"name\": \"f\"}"), "{\"q\":\"x\"}");
}

TEST(ToolCallParser, UnterminatedBlockAtFinish) {
  ToolCallDelta d = parse_tool_calls(
      "Checking.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"k\": [1, 2]}}\n", kSeed);
  EXPECT_EQ(d.content, "Checking.\n");
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.calls[0].name, "f");
  EXPECT_EQ(d.calls[0].arguments, "{\"k\":[1,2]}");

  const std::string cut = "text <tool_call>\n{\"name\": \"f\", \"argu";
  d = parse_tool_calls(cut, kSeed);
  EXPECT_EQ(d.content, cut);
  EXPECT_TRUE(d.calls.empty());
}

TEST(ToolCallParser, BlockIsHeldUntilItCloses) {
  ToolCallParser p(kSeed);
  EXPECT_EQ(p.push("Hi <tool").content, "Hi ");
  ToolCallDelta d = p.push("_call>\n{\"name\": \"f\"}\n</tool_ca");
  EXPECT_EQ(d.content, "");
  EXPECT_TRUE(d.calls.empty());
  d = p.push("ll>");
  EXPECT_EQ(d.content, "");
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(p.push("\n").content, "");  // held: dropped if another call or the end follows
  EXPECT_EQ(p.push("ok").content, "\nok");
  d = p.finish();
  EXPECT_EQ(d.content, "");
  EXPECT_TRUE(d.calls.empty());
}

TEST(ToolCallParser, Ids) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += "<tool_call>{\"name\": \"f\"}</tool_call>";
  const ToolCallDelta a = parse_tool_calls(text, kSeed);
  ASSERT_EQ(a.calls.size(), 200u);
  const std::regex format("call_[0-9a-z]{24}");
  std::set<std::string> ids;
  for (const ToolCall& c : a.calls) {
    EXPECT_TRUE(std::regex_match(c.id, format)) << c.id;
    ids.insert(c.id);
  }
  EXPECT_EQ(ids.size(), a.calls.size());  // distinct within a parser
  // Deterministic for a seed, different for another seed.
  EXPECT_EQ(parse_tool_calls(text, kSeed).calls, a.calls);
  EXPECT_NE(parse_tool_calls(text, kSeed + 1).calls[0].id, a.calls[0].id);
  // Bad blocks take no id: the first good call gets the first id.
  const ToolCallDelta b =
      parse_tool_calls("<tool_call>bad</tool_call><tool_call>{\"name\": \"f\"}</tool_call>", kSeed);
  ASSERT_EQ(b.calls.size(), 1u);
  EXPECT_EQ(b.calls[0].id, a.calls[0].id);
}

TEST(ToolCallParser, EverySplitMatchesOneShot) {
  for (const std::string& text : kOutputs) {
    const ToolCallDelta whole = parse_tool_calls(text, kSeed);
    for (const auto& pieces : all_cuts(text)) {
      const ToolCallDelta got = stream_tools(pieces, kSeed);
      ASSERT_EQ(got.content, whole.content) << describe(pieces);
      ASSERT_EQ(got.calls, whole.calls) << describe(pieces);
    }
  }
}

TEST(ToolCallParser, Utf8AroundTagsUnchanged) {
  // "天气 🙂" <call get "天气" with {"城市": "巴黎"}> "好的 🙂"
  const ToolCallDelta d = parse_tool_calls(
      "\xe5\xa4\xa9\xe6\xb0\x94 \xf0\x9f\x99\x82<tool_call>{\"name\": "
      "\"\xe5\xa4\xa9\xe6\xb0\x94\", \"arguments\": {\"\xe5\x9f\x8e\xe5\xb8\x82\": "
      "\"\xe5\xb7\xb4\xe9\xbb\x8e\"}}</tool_call>\xe5\xa5\xbd\xe7\x9a\x84 \xf0\x9f\x99\x82",
      kSeed);
  EXPECT_EQ(d.content,
            "\xe5\xa4\xa9\xe6\xb0\x94 \xf0\x9f\x99\x82\xe5\xa5\xbd\xe7\x9a\x84 \xf0\x9f\x99\x82");
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_EQ(d.calls[0].name, "\xe5\xa4\xa9\xe6\xb0\x94");
  EXPECT_EQ(d.calls[0].arguments,
            "{\"\xe5\x9f\x8e\xe5\xb8\x82\":\"\xe5\xb7\xb4\xe9\xbb\x8e\"}");  // not \u-escaped
}

// ---- ChatOutputParser ----

TEST(ChatOutputParser, ThinkingThenToolCalls) {
  const ChatDelta d = parse_chat_output(
      "<think>\nI could call <tool_call>{\"name\": \"x\"}</tool_call> here.\n</think>\n\n"
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
      "</tool_call>",
      true, false, true, kSeed);
  // The call inside the reasoning is part of the thinking.
  EXPECT_EQ(d.reasoning, "I could call <tool_call>{\"name\": \"x\"}</tool_call> here.");
  EXPECT_EQ(d.content, "");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
}

TEST(ChatOutputParser, ToolsOffOrThinkingOff) {
  const std::string text = "<think>\nhm\n</think>\n\n<tool_call>\n{\"name\": \"f\"}\n</tool_call>";
  ChatDelta d = parse_chat_output(text, true, false, false, kSeed);
  EXPECT_EQ(d.reasoning, "hm");
  EXPECT_EQ(d.content, "<tool_call>\n{\"name\": \"f\"}\n</tool_call>");
  EXPECT_TRUE(d.tool_calls.empty());

  d = parse_chat_output(text, false, false, true, kSeed);
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "<think>\nhm\n</think>\n\n");
  EXPECT_EQ(d.tool_calls.size(), 1u);
}

TEST(ChatOutputParser, UnterminatedThinkHidesToolCall) {
  const ChatDelta d =
      parse_chat_output("<tool_call>{\"name\": \"f\"}</tool_call>", true, true, true, kSeed);
  EXPECT_EQ(d.reasoning, "<tool_call>{\"name\": \"f\"}</tool_call>");
  EXPECT_TRUE(d.content.empty());
  EXPECT_TRUE(d.tool_calls.empty());
}

TEST(ChatOutputParser, EmptyDelta) {
  ChatOutputParser p(true, false, true, kSeed);
  EXPECT_TRUE(p.push("<think>").empty());
  EXPECT_FALSE(p.push("a").empty());
  EXPECT_TRUE(p.push("</think>\n<tool_call>{\"name\": \"f\"}").empty());
  const ChatDelta d = p.push("</tool_call>");
  EXPECT_FALSE(d.empty());
  EXPECT_EQ(d.tool_calls.size(), 1u);
  EXPECT_TRUE(p.finish().empty());
}

TEST(ChatOutputParser, EverySplitMatchesOneShot) {
  for (const std::string& text : kOutputs) {
    for (bool thinking : {true, false}) {
      for (bool starts : {false, true}) {
        for (bool tools : {true, false}) {
          const ChatDelta whole = parse_chat_output(text, thinking, starts, tools, kSeed);
          for (const auto& pieces : all_cuts(text)) {
            const ChatDelta got = stream_chat(pieces, thinking, starts, tools, kSeed);
            ASSERT_EQ(got.reasoning, whole.reasoning) << describe(pieces);
            ASSERT_EQ(got.content, whole.content) << describe(pieces);
            ASSERT_EQ(got.tool_calls, whole.tool_calls) << describe(pieces);
          }
        }
      }
    }
  }
}

TEST(ChatOutputParser, FixedOutputOfTheSplitSet) {
  // The combined output in kOutputs, spelled out: near-tags and a tool call stay reasoning.
  const ChatDelta d = parse_chat_output(kOutputs[10], true, false, true, kSeed);
  EXPECT_EQ(d.reasoning, "<tool_call>{\"name\": \"a\"}</tool_call> </th");
  EXPECT_EQ(d.content, "Sure.\n");
  ASSERT_EQ(d.tool_calls.size(), 2u);
  EXPECT_EQ(d.tool_calls[0].name, "get_weather");
  EXPECT_EQ(d.tool_calls[1].name, "f");
  EXPECT_EQ(d.tool_calls[1].arguments, "{}");
}

}  // namespace
TEST(ToolCallParser, DeeplyNestedArgumentsAreTextNotACrash) {
  const std::string deep =
      "<tool_call>{\"name\": \"f\", \"arguments\": " + std::string(100000, '[') +
      std::string(100000, ']') + "}</tool_call>";
  const ToolCallDelta d = parse_tool_calls(deep, 1);
  EXPECT_TRUE(d.calls.empty());
  EXPECT_EQ(d.content, deep);
}

}  // namespace qwen3moe
