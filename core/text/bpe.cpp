#include "core/text/bpe.h"

#include <algorithm>
#include <queue>

#include "core/text/open_table.h"

namespace qwen3moe {

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      t[b] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

int byte_of_char(char32_t c) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> t{};
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_to_char()[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return c < 512 ? inverse[c] : -1;
}

void MergeTable::reserve(size_t n) {
  const size_t cap = open_table_capacity(n);
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  size_ = 0;
  for (const Slot& s : old) {
    if (s.key != kEmpty) {
      insert(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xffffffffu), s.merge);
    }
  }
}

void MergeTable::grow() {
  reserve(std::max<size_t>(16, size_ * 2 + 2));
}

void MergeTable::insert(int32_t left, int32_t right, Merge merge) {
  if (open_table_needs_room(size_, slots_.size())) grow();
  const uint64_t key = pack(left, right);
  for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) return;
    if (s.key == kEmpty) {
      s.key = key;
      s.merge = merge;
      ++size_;
      return;
    }
  }
}

namespace {

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  bool alive;
};

// A candidate merge of the symbol at `pos` with its right neighbour. Ordered so that the
// priority queue pops the lowest rank, then the leftmost position, as Hugging Face's does.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t id;
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

void bpe_merge(const MergeTable& merges, const std::vector<int32_t>& byte_ids,
               std::vector<int32_t>& out) {
  const int32_t n = static_cast<int32_t>(byte_ids.size());
  if (n == 1) {
    out.push_back(byte_ids[0]);
    return;
  }
  static thread_local std::vector<Symbol> symbols;
  static thread_local std::vector<Candidate> heap_storage;
  symbols.resize(n);
  for (int32_t i = 0; i < n; ++i) symbols[i] = {byte_ids[i], i - 1, i + 1 < n ? i + 1 : -1, true};
  heap_storage.clear();
  std::priority_queue<Candidate> queue(std::less<Candidate>(), std::move(heap_storage));
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const auto* m = merges.find(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, i, m->id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Skip stale candidates: one of the two symbols has changed since it was queued.
    const Symbol& right = symbols[left.next];
    const auto* m = merges.find(left.id, right.id);
    if (m == nullptr || m->id != top.id) continue;
    const int32_t right_pos = left.next;
    left.id = top.id;
    left.next = right.next;
    symbols[right_pos].alive = false;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const auto* pm = merges.find(symbols[left.prev].id, left.id)) {
        queue.push({pm->rank, left.prev, pm->id});
      }
    }
    if (left.next >= 0) {
      if (const auto* nm = merges.find(left.id, symbols[left.next].id)) {
        queue.push({nm->rank, top.pos, nm->id});
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace qwen3moe
