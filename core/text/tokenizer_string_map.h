// A flat hash map from token strings to ids for loading tokenizer.json: 150k vocabulary
// entries and 450k lookups while resolving merges. Open addressing over one array of slots that
// keep the hash, so a lookup costs about one cache miss plus one comparison, several times
// faster than std::unordered_map here. Keys are views the caller keeps alive.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/text/open_table.h"

namespace qwen3moe {

class StringIdMap {
 public:
  void reserve(size_t n) {
    const size_t cap = open_table_capacity(n);
    if (cap <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& s : old) {
      if (s.data != nullptr) place(s);
    }
  }

  // Sets key -> id, replacing an existing id of the same key.
  void set(std::string_view key, int32_t id) {
    if (open_table_needs_room(size_, slots_.size())) reserve(size_ * 2 + 16);
    Slot s{hash(key), key.data() == nullptr ? "" : key.data(), static_cast<uint32_t>(key.size()),
           id};
    place(s);
  }
  // Inserts key -> id unless the key is present; returns false when it was.
  bool insert(std::string_view key, int32_t id) {
    if (find(key) >= 0) return false;
    set(key, id);
    return true;
  }
  // The id of key, or -1.
  int32_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.data == nullptr) return -1;
      if (s.hash == h && s.size == key.size() && std::memcmp(s.data, key.data(), key.size()) == 0) {
        return s.id;
      }
    }
  }
  size_t size() const { return size_; }

  static uint64_t hash(std::string_view key) {
    // 8 bytes at a time, then a final mix; tokens are short, so this is a few multiplies.
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ key.size();
    size_t i = 0;
    for (; i + 8 <= key.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, key.data() + i, 8);
      h = (h ^ w) * 0xBF58476D1CE4E5B9ULL;
      h ^= h >> 31;
    }
    uint64_t tail = 0;
    std::memcpy(&tail, key.data() + i, key.size() - i);
    h = (h ^ tail) * 0x94D049BB133111EBULL;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 32;
    return h;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    const char* data = nullptr;
    uint32_t size = 0;
    int32_t id = -1;
  };
  void place(const Slot& s) {
    for (size_t i = s.hash & mask_;; i = (i + 1) & mask_) {
      Slot& t = slots_[i];
      if (t.data == nullptr) {
        t = s;
        ++size_;
        return;
      }
      if (t.hash == s.hash && t.size == s.size && std::memcmp(t.data, s.data, s.size) == 0) {
        t.id = s.id;
        return;
      }
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace qwen3moe
