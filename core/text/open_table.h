// Sizing shared by the tokenizer's open-addressing tables (MergeTable, StringIdMap): a power of
// two slots, at most 3/4 full, so linear probes stay short.
#pragma once

#include <cstddef>

namespace qwen3moe {

// Slots for n entries.
inline size_t open_table_capacity(size_t n) {
  size_t cap = 16;
  while (cap * 3 < n * 4) cap *= 2;
  return cap;
}

// Whether one more entry would fill `slots` past 3/4.
inline bool open_table_needs_room(size_t size, size_t slots) {
  return (size + 1) * 4 > slots * 3;
}

}  // namespace qwen3moe
