#include "core/text/reasoning_parser.h"

#include <algorithm>

#include "core/text/text_scan.h"

namespace qwen3moe {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

using text_scan::is_space;
using text_scan::leading_space;
using text_scan::partial_tag;
using text_scan::without_trailing_space;

}  // namespace

ReasoningParser::ReasoningParser(bool enabled, bool starts_in_reasoning)
    : state_(!enabled              ? State::kContent
             : starts_in_reasoning ? State::kLeadingInReasoning
                                   : State::kLeading) {}

ReasoningDelta ReasoningParser::push(std::string_view text) {
  ReasoningDelta out;
  buf_.append(text);
  run(out, /*at_end=*/false);
  return out;
}

ReasoningDelta ReasoningParser::finish() {
  ReasoningDelta out;
  run(out, /*at_end=*/true);
  return out;
}

void ReasoningParser::run(ReasoningDelta& out, bool at_end) {
  for (;;) {
    switch (state_) {
      case State::kContent:
        out.content += buf_;
        buf_.clear();
        return;

      case State::kLeading:
      case State::kLeadingInReasoning: {
        const size_t space = leading_space(buf_);
        const std::string_view rest = std::string_view(buf_).substr(space);
        if (rest.starts_with(kOpen)) {
          buf_.erase(0, space + kOpen.size());
          state_ = State::kReasoningLead;
          continue;
        }
        // Nothing but whitespace and maybe the start of `<think>` yet: wait for more.
        const bool undecided = rest.size() < kOpen.size() && kOpen.starts_with(rest);
        if (undecided && !at_end) return;
        if (state_ == State::kLeading) {
          state_ = State::kContent;  // keeps the whitespace: it is content after all
        } else {
          buf_.erase(0, space);  // whitespace at the start of the reasoning
          state_ = State::kReasoning;
        }
        continue;
      }

      case State::kReasoningLead:
      case State::kAfterThink: {
        buf_.erase(0, leading_space(buf_));
        if (buf_.empty()) return;
        state_ = state_ == State::kReasoningLead ? State::kReasoning : State::kContent;
        continue;
      }

      case State::kReasoning: {
        const size_t close = buf_.find(kClose);
        if (close != std::string::npos) {
          out.reasoning.append(buf_, 0,
                               without_trailing_space(std::string_view(buf_).substr(0, close)));
          buf_.erase(0, close + kClose.size());
          state_ = State::kAfterThink;
          continue;
        }
        // Hold a possible `</think>` prefix and the whitespace before it, which is dropped if
        // the tag follows. At the end the held prefix is reasoning text; the whitespace is not.
        const size_t open_end = at_end ? buf_.size() : buf_.size() - partial_tag(buf_, kClose);
        const size_t ready = without_trailing_space(std::string_view(buf_).substr(0, open_end));
        out.reasoning.append(buf_, 0, ready);
        if (at_end) {
          buf_.clear();
        } else {
          buf_.erase(0, ready);
        }
        return;
      }
    }
  }
}

ReasoningDelta split_reasoning(std::string_view text, bool enabled, bool starts_in_reasoning) {
  ReasoningParser parser(enabled, starts_in_reasoning);
  ReasoningDelta out = parser.push(text);
  const ReasoningDelta rest = parser.finish();
  out.reasoning += rest.reasoning;
  out.content += rest.content;
  return out;
}

}  // namespace qwen3moe
