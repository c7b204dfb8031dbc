// UTF-8 helpers shared by the tokenizer, the streaming decoder and the chat template: strict
// validation (errors name the byte offset) and the lossy decoding Hugging Face applies to token
// bytes (each maximal invalid subpart becomes one U+FFFD, as Rust's String::from_utf8_lossy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qwen3moe::utf8 {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes there are not a
// complete valid character (invalid lead, bad continuation, overlong, surrogate, > U+10FFFF or
// truncated by the end of s).
size_t valid_char_length(std::string_view s, size_t i);

// Offset of the first byte that is not part of valid UTF-8, or npos when s is valid.
size_t first_invalid(std::string_view s);

// Throws Error "invalid UTF-8 at byte offset N" (prefixed by what) unless s is valid.
void check_valid(std::string_view s, std::string_view what = "input");

// Decodes the valid character of length len at s[i] (len from valid_char_length).
char32_t decode(std::string_view s, size_t i, size_t len);

// Appends the UTF-8 encoding of cp.
void append(std::string& out, char32_t cp);

// Appends bytes to out, replacing each maximal invalid subpart by U+FFFD.
void append_lossy(std::string& out, std::string_view bytes);

// Number of leading bytes of `bytes` that can be decoded now without knowing what follows:
// whole characters and invalid subparts, but not a trailing prefix of a character that more
// bytes could still complete. Lossy-decoding that prefix and then the rest gives the same text
// as lossy-decoding everything at once.
size_t stable_prefix_length(std::string_view bytes);

}  // namespace qwen3moe::utf8
