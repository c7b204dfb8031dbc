#include "core/model/workspace.h"

#include <algorithm>
#include <type_traits>

namespace qwen3moe {

Workspace::~Workspace() {
  if (arena_) backend_.free(arena_);
  if (tables_arena_) backend_.free(tables_arena_);
}

void Workspace::allocate(const WorkspaceShape& s) {
  if (arena_) backend_.free(arena_);
  arena_ = nullptr;
  shape_ = s;
  const int64_t N = s.tokens, H = s.hidden, k = std::max<int64_t>(1, s.top_k);
  const int64_t E = std::max<int64_t>(1, s.experts);
  // Two passes over one list: the first sums the sizes, the second hands out the pointers.
  // Every buffer starts on a 256-byte boundary (vector loads, cuBLAS, distinct cache lines).
  size_t total = 0;
  char* base = nullptr;
  auto carve = [&](auto*& ptr, int64_t elems) {
    using T = std::remove_reference_t<decltype(*ptr)>;
    const size_t bytes = (size_t(std::max<int64_t>(elems, 1)) * sizeof(T) + 255) / 256 * 256;
    if (base) ptr = reinterpret_cast<T*>(base + total);
    total += bytes;
  };
  for (int pass = 0; pass < 2; ++pass) {
    total = 0;
    carve(x, N * H);
    carve(h, N * H);
    carve(o, N * H);
    carve(xs, N * H);
    carve(query, N * s.q_dim);
    carve(attn, N * s.q_dim);
    carve(key, N * s.kv_dim);
    carve(value, N * s.kv_dim);
    carve(gate, N * s.ffn);
    carve(up, N * s.ffn);
    carve(act, N * s.ffn);
    carve(down, N * k * H);
    carve(rows, N * k * H);
    carve(router_logits, N * E);
    carve(topk_w, N * k);
    carve(logits, N * s.vocab_local);
    carve(token_ids, N);
    carve(positions, N);
    carve(token_seq, N);
    carve(slots, N);
    carve(topk_ids, N * k);
    carve(moe_pos, s.dispatch_rows * k);
    carve(moe_idx, s.dispatch_rows * k);
    carve(moe_offsets, E + 1);
    carve(moe_active, E);
    carve(logit_rows, N);
    if (pass == 0) base = static_cast<char*>(backend_.alloc(total));
  }
  arena_ = base;
}

bool Workspace::reserve_tables(int64_t entries) {
  if (entries <= table_capacity_ && tables_arena_) return false;
  if (tables_arena_) backend_.free(tables_arena_);
  table_capacity_ = std::max<int64_t>({entries, 2 * table_capacity_, 1});
  tables_arena_ = backend_.alloc(size_t(table_capacity_) * sizeof(int32_t));
  tables = static_cast<int32_t*>(tables_arena_);
  return true;
}

}  // namespace qwen3moe
