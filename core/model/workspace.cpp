#include "core/model/workspace.h"

#include <algorithm>
#include <type_traits>

namespace qwen3moe {

Workspace::~Workspace() {
  if (arena_) backend_.free(arena_);
  if (tables_arena_) backend_.free(tables_arena_);
}

size_t carve_workspace(WorkspaceBuffers& b, char* base, const WorkspaceShape& s) {
  const int64_t N = s.tokens, H = s.hidden, k = std::max<int64_t>(1, s.top_k);
  const int64_t E = std::max<int64_t>(1, s.experts);
  // Every buffer starts on a 256-byte boundary (vector loads, cuBLAS, distinct cache lines).
  size_t total = 0;
  auto carve = [&](auto*& ptr, int64_t elems) {
    using T = std::remove_reference_t<decltype(*ptr)>;
    const size_t bytes = (size_t(std::max<int64_t>(elems, 1)) * sizeof(T) + 255) / 256 * 256;
    if (base) ptr = reinterpret_cast<T*>(base + total);
    total += bytes;
  };
  // This rank's group's rows (all N at dp 1): at dp 8 the logits alone would otherwise take
  // eight times their room.
  const int64_t G = s.group_tokens > 0 ? s.group_tokens : N;
  carve(b.x, G * H);
  carve(b.h, G * H);
  carve(b.o, G * H);
  carve(b.xs, G * H);
  carve(b.query, G * s.q_dim);
  carve(b.attn, G * s.q_dim);
  carve(b.key, G * s.kv_dim);
  carve(b.value, G * s.kv_dim);
  carve(b.gate, N * s.ffn);
  carve(b.up, N * s.ffn);
  carve(b.act, N * s.ffn);
  carve(b.down, N * k * H);
  carve(b.rows, N * k * H);
  carve(b.router_logits, G * E);
  carve(b.topk_w, G * k);
  carve(b.logits, G * s.vocab_local);
  carve(b.token_ids, G);
  carve(b.positions, G);
  carve(b.token_seq, G);
  carve(b.slots, G);
  carve(b.topk_ids, G * k);
  carve(b.moe_pos, s.dispatch_rows * k);
  carve(b.moe_idx, s.dispatch_rows * k);
  carve(b.moe_offsets, E + 1);
  carve(b.moe_active, E);
  carve(b.logit_rows, G);
  return total;
}

void Workspace::allocate(const WorkspaceShape& s) {
  if (arena_) backend_.free(arena_);
  arena_ = nullptr;
  shape_ = s;
  // The sizes first, then the pointers into one allocation.
  arena_ = backend_.alloc(arena_bytes(s));
  carve_workspace(*this, static_cast<char*>(arena_), s);
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
