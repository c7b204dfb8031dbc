// Internals of Tokenizer shared by its encode/decode half (tokenizer.cpp) and its loader
// (tokenizer_load.cpp).
#pragma once

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/bpe.h"
#include "core/text/pretokenizer.h"
#include "core/text/tokenizer.h"
#include "core/text/tokenizer_string_map.h"
#include "core/text/tokenizer_word_cache.h"
#include "core/text/utf8.h"

namespace qwen3moe {

struct AddedToken {
  std::string content;  // as matched: normalized first when `normalized` is set
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A piece of the input: either plain text [begin, end) or an added token (id >= 0).
struct Piece {
  size_t begin;
  size_t end;
  int32_t id;
};

inline bool is_space(char32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85) return true;
  if (cp < 0x80) return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

inline bool is_word_char(char32_t cp) {
  if (cp == '_') return true;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

// Finds added tokens in text the way Hugging Face's AddedVocabulary does: leftmost-longest,
// non-overlapping matches, honouring single_word, lstrip and rstrip.
class AddedMatcher {
 public:
  void add(const AddedToken& token) {
    if (token.content.empty()) return;
    tokens_.push_back(token);
  }
  void build() {
    for (auto& list : by_first_byte_) list.clear();
    for (size_t i = 0; i < tokens_.size(); ++i) {
      by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
    }
    for (auto& list : by_first_byte_) {
      std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) {
        return tokens_[a].content.size() > tokens_[b].content.size();
      });
    }
  }
  bool empty() const { return tokens_.empty(); }

  // Splits text (starting at byte `base` of the caller's string) into pieces.
  void split(std::string_view text, size_t base, std::vector<Piece>& pieces) const {
    size_t start = 0;  // start of the text not yet emitted
    size_t pos = 0;
    while (pos < text.size()) {
      const auto& candidates = by_first_byte_[static_cast<unsigned char>(text[pos])];
      const AddedToken* hit = nullptr;
      for (size_t idx : candidates) {
        const std::string& c = tokens_[idx].content;
        if (text.compare(pos, c.size(), c) == 0) {
          hit = &tokens_[idx];
          break;
        }
      }
      if (hit == nullptr) {
        ++pos;
        continue;
      }
      size_t match_begin = pos;
      size_t match_end = pos + hit->content.size();
      if (hit->single_word && !(is_word_boundary_before(text, match_begin) &&
                                is_word_boundary_after(text, match_end))) {
        pos = match_end;
        continue;
      }
      if (hit->lstrip) {
        while (match_begin > start) {
          const size_t prev = previous_char(text, match_begin);
          const size_t len = match_begin - prev;
          if (!is_space(utf8::decode(text, prev, len))) break;
          match_begin = prev;
        }
      }
      if (hit->rstrip) {
        while (match_end < text.size()) {
          const size_t len = utf8::valid_char_length(text, match_end);
          if (len == 0 || !is_space(utf8::decode(text, match_end, len))) break;
          match_end += len;
        }
      }
      if (start < match_begin) pieces.push_back({base + start, base + match_begin, -1});
      pieces.push_back({base + match_begin, base + match_end, hit->id});
      start = pos = match_end;
    }
    if (start < text.size()) pieces.push_back({base + start, base + text.size(), -1});
  }

 private:
  static size_t previous_char(std::string_view text, size_t pos) {
    size_t p = pos - 1;
    while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
    return p;
  }
  static bool is_word_boundary_before(std::string_view text, size_t pos) {
    if (pos == 0) return true;
    const size_t prev = previous_char(text, pos);
    return !is_word_char(utf8::decode(text, prev, pos - prev));
  }
  static bool is_word_boundary_after(std::string_view text, size_t pos) {
    if (pos == text.size()) return true;
    const size_t len = utf8::valid_char_length(text, pos);
    return len == 0 || !is_word_char(utf8::decode(text, pos, len));
  }
  std::vector<AddedToken> tokens_;
  std::array<std::vector<size_t>, 256> by_first_byte_;
};

struct Tokenizer::Impl {
  // utf8proc options of the normalizer; 0 when there is none.
  int normalize_options = 0;
  PreTokenizer pre_tokenizer;
  MergeTable merges;
  bool ignore_merges = false;
  std::array<int32_t, 256> byte_ids{};  // id of the one-byte token of each byte
  AddedMatcher raw_added;               // added tokens matched before normalization
  AddedMatcher normalized_added;        // added tokens matched on normalized text
  std::vector<uint8_t> special;         // per id: an added token marked special

  // Bytes each id decodes to, back to back; offsets has one more entry than there are ids.
  std::string bytes;
  std::vector<uint32_t> offsets;
  std::vector<uint8_t> has_token;

  // Token strings as written in tokenizer.json, for token_id().
  std::string names;
  std::vector<std::string> added_names;
  StringIdMap name_to_id;
  StringIdMap vocab_bytes_to_id;  // only filled when ignore_merges is set

  // Results of BPE per word: repeated words are the common case in any text.
  // A thread that finds the cache busy encodes without it rather than wait.
  mutable std::mutex cache_mutex;
  mutable WordCache cache;
  // The normalizer is NFC, so text of NFC-inert characters can skip it.
  bool nfc = false;

  std::string normalize(std::string_view text) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out, WordCache* word_cache) const;
  void encode_text(std::string_view text, std::vector<int32_t>& out, WordCache* word_cache) const;
  // Applies the normalizer; false (out untouched) when text is already normal.
  bool normalize_into(std::string_view text, std::string& out) const;
};

}  // namespace qwen3moe
