#include "core/text/tool_call_parser.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/text/text_scan.h"
#include "kernels/common/random_hash.h"

namespace qwen3moe {
namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

using text_scan::is_space;
using text_scan::leading_space;
using text_scan::partial_tag;

std::string_view trim(std::string_view s) {
  s.remove_prefix(leading_space(s));
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

void append_hex(std::string& out, uint64_t v, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) out.push_back(kHex[(v >> (4 * i)) & 0xF]);
}

}  // namespace

ToolCallDelta ToolCallParser::push(std::string_view content) {
  ToolCallDelta out;
  buf_.append(content);
  run(out, /*at_end=*/false);
  return out;
}

ToolCallDelta ToolCallParser::finish() {
  ToolCallDelta out;
  run(out, /*at_end=*/true);
  return out;
}

void ToolCallParser::flush_space(ToolCallDelta& out) {
  out.content += space_;
  space_.clear();
  after_call_ = false;
}

void ToolCallParser::run(ToolCallDelta& out, bool at_end) {
  for (;;) {
    if (in_block_) {
      const size_t close = buf_.find(kClose, close_scanned_);
      if (close == std::string::npos && !at_end) {
        close_scanned_ = buf_.size() - std::min(buf_.size(), kClose.size() - 1);
        return;
      }
      const bool closed = close != std::string::npos;
      const std::string_view body = std::string_view(buf_).substr(0, closed ? close : buf_.size());
      if (std::optional<ToolCall> call = parse_call(body)) {
        space_.clear();  // only calls around it: the whitespace is layout, not content
        out.calls.push_back(std::move(*call));
        after_call_ = true;
      } else {
        flush_space(out);
        out.content += kOpen;
        out.content += body;
        if (closed) out.content += kClose;
      }
      buf_.erase(0, closed ? close + kClose.size() : buf_.size());
      in_block_ = false;
      continue;
    }

    if (after_call_) {
      const size_t space = leading_space(buf_);
      space_.append(buf_, 0, space);
      buf_.erase(0, space);
      if (buf_.empty()) {
        if (at_end) space_.clear();  // whitespace after the last call
        return;
      }
    }
    const size_t open = buf_.find(kOpen);
    if (open != std::string::npos) {
      if (open > 0) {
        flush_space(out);
        out.content.append(buf_, 0, open);
      }
      buf_.erase(0, open + kOpen.size());
      in_block_ = true;
      close_scanned_ = 0;
      continue;
    }
    const size_t ready = at_end ? buf_.size() : buf_.size() - partial_tag(buf_, kOpen);
    if (ready > 0) {
      flush_space(out);
      out.content.append(buf_, 0, ready);
      buf_.erase(0, ready);
    }
    return;
  }
}

std::optional<ToolCall> ToolCallParser::parse_call(std::string_view body) {
  // ordered_json keeps the arguments' keys in the model's order when they are dumped again.
  const std::string_view text = trim(body);
  // The model's text, nested at most 64 deep: the arguments are dumped again (recursively), and
  // a model can be asked to write brackets by the thousand.
  struct TooDeep {};
  const auto bound = [](int depth, nlohmann::ordered_json::parse_event_t event,
                        nlohmann::ordered_json&) {
    if ((event == nlohmann::ordered_json::parse_event_t::object_start ||
         event == nlohmann::ordered_json::parse_event_t::array_start) &&
        depth >= 64)
      throw TooDeep{};
    return true;
  };
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text.begin(), text.end(), bound, /*allow_exceptions=*/false);
  } catch (const TooDeep&) {
    return std::nullopt;
  }
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  const auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get_ref<const std::string&>().empty()) {
    return std::nullopt;
  }
  ToolCall call;
  call.name = name->get<std::string>();
  const auto args = j.find("arguments");
  if (args == j.end() || args->is_null()) {
    call.arguments = "{}";
  } else if (args->is_string()) {
    call.arguments = args->get<std::string>();
  } else {
    call.arguments = args->dump();
  }
  // Seed plus an odd step per call, through a bijection: distinct for every call of a parser.
  // splitmix64 is a bijection: distinct counts give distinct first halves.
  const uint64_t first = splitmix64(id_seed_ + calls_ * 0x9E3779B97F4A7C15ull);
  const uint64_t second = splitmix64(first ^ 0xD6E8FEB86659FD93ull);
  ++calls_;
  call.id = "call_";
  append_hex(call.id, first, 16);
  append_hex(call.id, second, 8);
  return call;
}

ToolCallDelta parse_tool_calls(std::string_view content, uint64_t id_seed) {
  ToolCallParser parser(id_seed);
  ToolCallDelta out = parser.push(content);
  ToolCallDelta rest = parser.finish();
  out.content += rest.content;
  for (ToolCall& call : rest.calls) out.calls.push_back(std::move(call));
  return out;
}

}  // namespace qwen3moe
