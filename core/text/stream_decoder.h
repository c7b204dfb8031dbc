// Incremental detokenisation for generation. Token boundaries cut through UTF-8 characters
// (an emoji or a CJK character is often two or three byte tokens), so each push returns only
// whole characters and holds back the bytes of an unfinished one. The chunks concatenated equal
// Tokenizer::decode of all the ids, U+FFFD replacements included.
#pragma once

#include <cstdint>
#include <string>

#include "core/text/tokenizer.h"

namespace qwen3moe {

class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}

  // Text that became complete with this id (may be "").
  std::string push(int32_t id);
  // Whatever remains: the bytes of an unfinished character become U+FFFD, as decode does.
  std::string finish();

 private:
  Tokenizer tok_;        // shares the loaded tables
  std::string pending_;  // bytes of an unfinished character (at most 3)
};

}  // namespace qwen3moe
