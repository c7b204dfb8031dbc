// Splits streamed Qwen3 output into reasoning and content, the way vLLM's qwen3 reasoning parser
// does, so the server can return `reasoning_content` apart from `content`. With thinking on,
// Qwen3 writes `<think>\n...reasoning...\n</think>\n\nanswer`; the 2507 "Thinking" variants put
// `<think>` into the prompt, so their output starts inside the reasoning and only `</think>`
// appears. Text arrives a detokenised chunk at a time and a tag may be cut at any byte
// (`</thi` + `nk>`), so the parser holds back what could still turn out to be a tag (or
// whitespace that is stripped next to one) and emits everything else at once.
//
// Rules (enabled):
//   - Not starting in reasoning: whitespace before the first other text is held. If that text is
//     `<think>` the reasoning begins (the leading whitespace is dropped); otherwise all of the
//     output is content, the whitespace included, and a later `<think>` is plain content.
//   - Starting in reasoning: the output is reasoning from its first byte. A `<think>` the model
//     writes anyway as its first non-whitespace text is dropped (the tag is already in the
//     prompt; emitting it would show a stray tag).
//   - Whitespace directly after `<think>` (or at the start, when starting in reasoning) and
//     directly before `</think>` is not part of the reasoning. After `</think>`, leading
//     whitespace of the content is dropped; everything after that is content, tags included.
//   - A stream that ends (finish) inside the reasoning without `</think>` leaves the held text as
//     reasoning, trailing whitespace stripped as if `</think>` had come: an unterminated think
//     block (the model hit the token limit while thinking) is reasoning, never content, as in
//     vLLM.
// Disabled: everything is content, unchanged.
//
// For every way of cutting a text into pushes, the concatenated deltas equal split_reasoning of
// the whole text. Tags are ASCII, so a delta cuts a UTF-8 character only where the input did.
#pragma once

#include <string>
#include <string_view>

namespace qwen3moe {

struct ReasoningDelta {
  std::string reasoning;  // reasoning text decided by this call
  std::string content;    // content text decided by this call
};

class ReasoningParser {
 public:
  // enabled=false: all text is content. starts_in_reasoning: the prompt ended with `<think>`.
  explicit ReasoningParser(bool enabled, bool starts_in_reasoning = false);

  // Feeds the next chunk of model output; returns the text that became decided.
  ReasoningDelta push(std::string_view text);
  // End of the output: returns what was held back (see the rules above).
  ReasoningDelta finish();

  // True once `</think>` was seen or the output was found not to start with `<think>` (or the
  // parser is disabled): the rest of the stream is content.
  bool in_content() const { return state_ == State::kContent || state_ == State::kAfterThink; }

 private:
  enum class State {
    kLeading,             // before any non-whitespace; content unless it is `<think>`
    kLeadingInReasoning,  // starts_in_reasoning, before any non-whitespace; may skip `<think>`
    kReasoningLead,       // just after `<think>`: drop whitespace
    kReasoning,           // inside the reasoning
    kAfterThink,          // just after `</think>`: drop whitespace
    kContent,             // everything else is content
  };

  // Decides as much of buf_ as possible; at_end: no more text will come.
  void run(ReasoningDelta& out, bool at_end);

  State state_;
  std::string buf_;  // text not decided yet: leading whitespace, a possible tag prefix
};

// One-shot parse of a whole output (what the pushes and finish concatenate to).
ReasoningDelta split_reasoning(std::string_view text, bool enabled,
                               bool starts_in_reasoning = false);

}  // namespace qwen3moe
