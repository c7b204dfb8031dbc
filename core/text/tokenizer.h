// The Qwen3 tokenizer: a byte-level BPE read entirely from a Hugging Face tokenizer.json and
// giving exactly the ids of Hugging Face `tokenizers`: added tokens split out first, then the
// normalizer (NFC), the regex split, the byte-level mapping and BPE by merge rank.
// Copies share the loaded tables; encode/decode are safe to call from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3moe {

class Tokenizer {
 public:
  // Reads dir/tokenizer.json; throws Error naming the file and the problem.
  static Tokenizer load(const std::string& dir);
  // Same, from the text of a tokenizer.json; `source` names it in errors.
  static Tokenizer from_json(std::string_view json, const std::string& source);

  // Throws Error on invalid UTF-8, naming the byte offset. No special tokens are added.
  std::vector<int32_t> encode(std::string_view text) const;
  // Special tokens are kept; ids with no token are skipped (as Hugging Face does); bytes that
  // do not form UTF-8 become U+FFFD.
  std::string decode(std::span<const int32_t> ids) const;
  // The raw bytes id stands for (empty for an id with no token); used by StreamDecoder.
  std::string_view token_bytes(int32_t id) const;
  int32_t vocab_size() const;  // including added tokens
  // Id of a token written as in tokenizer.json (added token content or byte-level vocab key).
  std::optional<int32_t> token_id(std::string_view token) const;
  // True for added tokens marked "special" (e.g. <|im_end|>).
  bool is_special(int32_t id) const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  static Tokenizer parse_json(std::string_view json, const std::string& source);
  std::shared_ptr<const Impl> impl_;
};

}  // namespace qwen3moe
