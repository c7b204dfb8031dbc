// The Qwen2 / Llama-3 pre-tokenizer split, as a hand-written scanner that gives exactly the
// matches Oniguruma finds for the regex in tokenizer.json:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
// (K = 1 for Qwen2, 3 for Llama 3). Every character starts some alternative, so the matches
// tile the text and "Isolated" splitting is just the list of matches. Character classes come
// from utf8proc's general categories; \s is Oniguruma's Unicode whitespace (9-13, U+0085,
// Zs, Zl, Zp).
#pragma once

#include <string_view>
#include <vector>

namespace qwen3moe {

class PreTokenizer {
 public:
  // Recognises the regex of a Split pre-tokenizer; throws Error naming the pattern when it is
  // not one this scanner implements.
  static PreTokenizer from_pattern(std::string_view pattern);

  // Appends the byte offsets where each piece ends (the last is text.size()). text must be
  // valid UTF-8.
  void split(std::string_view text, std::vector<size_t>& ends) const;

 private:
  int max_digits_ = 1;
};

}  // namespace qwen3moe
