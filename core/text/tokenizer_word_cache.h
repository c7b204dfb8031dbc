// BPE results per pre-tokenized word. Text repeats words constantly, so most words skip BPE.
// One flat open-addressing table plus two arenas (word bytes, ids): a lookup is a hash, one
// probe and a compare, with no allocation. When full it starts over, which bounds its memory.
// Not thread-safe: the tokenizer guards it with a mutex.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/tokenizer_string_map.h"

namespace qwen3moe {

class WordCache {
 public:
  WordCache() : slots_(kMinSlots) {}

  // The cached ids of word, or false.
  bool find(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.key_size == kEmpty) return false;
      if (s.hash == hash && s.key_size == word.size() &&
          std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
        out.insert(out.end(), ids_.begin() + s.ids_offset,
                   ids_.begin() + s.ids_offset + s.ids_size);
        return true;
      }
    }
  }

  void insert(std::string_view word, uint64_t hash, std::span<const int32_t> ids) {
    // Grow to a bound, then start over when full or when the arenas pass their budget: a text
    // of endless distinct words must not grow memory without bound.
    if ((size_ + 1) * 2 > slots_.size()) {
      if (slots_.size() < kMaxSlots) {
        grow();
      } else {
        clear();
      }
    }
    if (keys_.size() + word.size() > kArenaLimit || ids_.size() + ids.size() > kArenaLimit) clear();
    Slot& slot = free_slot(hash);
    slot = Slot{hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(word.size()),
                static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(ids.size())};
    keys_.append(word);
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    ++size_;
  }

  void clear() {
    for (Slot& s : slots_) s.key_size = kEmpty;
    keys_.clear();
    ids_.clear();
    size_ = 0;
  }

 private:
  static constexpr uint32_t kEmpty = ~uint32_t{0};
  static constexpr size_t kMinSlots = size_t{1} << 12;
  static constexpr size_t kMaxSlots = size_t{1} << 19;
  static constexpr size_t kArenaLimit = size_t{64} << 20;
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0;
    uint32_t key_size = kEmpty;
    uint32_t ids_offset = 0;
    uint32_t ids_size = 0;
  };
  Slot& free_slot(uint64_t hash) {
    const size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    while (slots_[i].key_size != kEmpty) i = (i + 1) & mask;
    return slots_[i];
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& s : old) {
      if (s.key_size != kEmpty) free_slot(s.hash) = s;
    }
  }
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t size_ = 0;
};

}  // namespace qwen3moe
