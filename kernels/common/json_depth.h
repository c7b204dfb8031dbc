// JSON read from files and requests, parsed with a bound on its nesting. nlohmann's parser is
// iterative, but copying, dumping and walking a value recurse once per level, so a file of a
// few hundred kilobytes of brackets would end the process with a stack overflow wherever its
// value is later printed into an error or converted; a bounded parse makes that one error
// naming the limit and the source instead. Header-only and generic over nlohmann's json types,
// so every layer can use it without a new dependency.
#pragma once

#include <string>

#include "kernels/common/check.h"

namespace qwen3moe {

// Deeper than any real config, tokenizer or request (tokenizer.json nests 5 levels, a tool's
// JSON schema a dozen).
inline constexpr int kMaxJsonNesting = 128;

// Json::parse(text) that throws Error naming `source`: past kMaxJsonNesting levels, and for
// text that is not JSON.
template <typename Json, typename Input>
Json parse_json_nested_at_most(Input&& text, const std::string& source,
                               int max_depth = kMaxJsonNesting) {
  auto bound = [&](int depth, typename Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= max_depth)
      QWEN3MOE_FAIL(source, ": JSON nested deeper than ", max_depth, " levels");
    return true;
  };
  try {
    return Json::parse(std::forward<Input>(text), bound);
  } catch (const typename Json::exception& e) {
    // Malformed text, and numbers past double's range (out_of_range, not a parse_error).
    QWEN3MOE_FAIL(source, ": not valid JSON (", e.what(), ")");
  }
}

}  // namespace qwen3moe
