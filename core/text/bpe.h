// Byte-level BPE: the GPT-2 byte <-> character mapping that tokenizer.json's vocabulary is
// written in, and the merge loop of Hugging Face's BPE model (lowest merge rank first, leftmost
// first among equal ranks), over token ids rather than strings.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3moe {

// GPT-2's bytes_to_unicode table: printable bytes map to themselves, the rest to U+0100 + n.
const std::array<char32_t, 256>& byte_to_char();
// Inverse of byte_to_char; -1 for characters that are not the image of a byte.
int byte_of_char(char32_t c);

// Merges keyed by the pair of ids they join; an open-addressing table because this lookup is
// the innermost loop of encoding.
class MergeTable {
 public:
  struct Merge {
    int32_t rank = -1;
    int32_t id = -1;
  };
  void reserve(size_t n);
  // Keeps the first merge of a pair, as Hugging Face does when a file repeats one.
  void insert(int32_t left, int32_t right, Merge merge);
  const Merge* find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    const uint64_t key = pack(left, right);
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t pack(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return static_cast<size_t>(key);
  }
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge;
  };
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Applies the merges to a word given as the ids of its bytes; appends the result to out.
void bpe_merge(const MergeTable& merges, const std::vector<int32_t>& byte_ids,
               std::vector<int32_t>& out);

}  // namespace qwen3moe
