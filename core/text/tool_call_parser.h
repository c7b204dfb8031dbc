// Pulls Qwen3's hermes-style tool calls out of streamed content, the way vLLM's hermes tool
// parser does, so the server can return OpenAI `tool_calls`. The model writes blocks
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
// anywhere in its content, possibly several, with text before, between or after them. Text
// arrives a chunk at a time and `<tool_call>` may be cut at any byte, so text outside blocks is
// held back only while it could be the start of the tag; a block is held whole until its
// `</tool_call>` (its JSON cannot be judged before).
//
// Rules:
//   - A complete block whose inner text, trimmed, parses as a JSON object with a non-empty string
//     "name" becomes a ToolCall and contributes no content. Anything else (bad JSON, not an
//     object, no name) is passed through as content verbatim, tags included, so nothing the
//     model wrote is lost.
//   - arguments: the "arguments" value serialised compactly (key order as the model wrote it),
//     the JSON string OpenAI returns; a missing or null "arguments" gives "{}"; a string value
//     (some models stringify the object) is used as it is.
//   - `<tool_call>` without `</tool_call>` at finish (models sometimes stop at the eos right
//     after the JSON): the text after the tag is parsed as above; if it is no call, it is
//     content verbatim.
//   - Whitespace: content before the first call is kept verbatim (callers may trim). Whitespace
//     after a call is dropped when only another call or the end of the output follows it, so
//     `<tool_call>..</tool_call>\n<tool_call>..</tool_call>\n` yields empty content; when other
//     text (or a block that is passed through) follows, the whitespace is kept with it.
//   - ids: `call_` + 24 lowercase hex digits, from the seed and the number of calls so far
//     (splitmix64), so they are deterministic for a seed and distinct within a parser.
//
// For every way of cutting a text into pushes, the concatenated deltas equal parse_tool_calls of
// the whole text (same calls, same ids). Tags are ASCII, so content cuts a UTF-8 character only
// where the input did.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3moe {

struct ToolCall {
  std::string id;         // "call_" + 24 hex digits
  std::string name;       // function name
  std::string arguments;  // JSON text of the arguments (an object, as the model wrote it)

  bool operator==(const ToolCall&) const = default;
};

struct ToolCallDelta {
  std::string content;          // content text decided by this call
  std::vector<ToolCall> calls;  // calls completed by this call, in order
};

class ToolCallParser {
 public:
  // id_seed: calls' ids derive from it (a per-request random value in the server, fixed in tests).
  explicit ToolCallParser(uint64_t id_seed) : id_seed_(id_seed) {}

  // Feeds the next chunk of content; returns the content and calls that became decided.
  ToolCallDelta push(std::string_view content);
  // End of the content: returns what was held back (see the rules above).
  ToolCallDelta finish();

 private:
  // Decides as much of buf_ as possible; at_end: no more text will come.
  void run(ToolCallDelta& out, bool at_end);
  // The call in a block's inner text, or nullopt when it is not one (takes an id only if it is).
  std::optional<ToolCall> parse_call(std::string_view body);
  // Emits the whitespace held after a call: other text follows it.
  void flush_space(ToolCallDelta& out);

  uint64_t id_seed_;
  uint64_t calls_ = 0;        // calls made so far (the id counter)
  std::string buf_;           // undecided text: a possible tag prefix, or a block's inner text
  bool in_block_ = false;     // buf_ is the inside of a `<tool_call>` block
  size_t close_scanned_ = 0;  // bytes of buf_ in a block already known to start no `</tool_call>`
  bool after_call_ = false;   // the last decided thing is a call (whitespace is held)
  std::string space_;         // whitespace after that call, dropped if another call follows
};

// One-shot parse of a whole content (what the pushes and finish concatenate to).
ToolCallDelta parse_tool_calls(std::string_view content, uint64_t id_seed);

}  // namespace qwen3moe
