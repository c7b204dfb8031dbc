// The forward's scratch on the backend: one allocation carved into named buffers for up to
// `tokens` tokens of a step (N below; Ng of them in this rank's DP group), and a second for the
// block tables, which grow on their own. Reallocating frees the old arena whole; the model drops
// its captured graphs then (they hold the old addresses). Shapes in elements: H hidden, hq/kvl this
// rank's query/KV heads, D head_dim, F the widest MLP (dense intermediate or k experts'
// intermediates), E experts, Vl this rank's vocabulary slice, R the most rows one expert dispatch
// can hand this rank.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace qwen3moe {

struct WorkspaceShape {
  int64_t tokens = 0;  // N: a multiple of the world size; every rank's share of a step's tokens
  // Ng: the rows of this rank's DP group's own batch (N / world x tp; N at dp 1), which the
  // residual, attention, router and logits buffers hold; the MoE pair buffers hold N x k.
  int64_t group_tokens = 0;
  int64_t hidden = 0, q_dim = 0, kv_dim = 0;  // H, hq * D, kvl * D
  int64_t ffn = 0, top_k = 1, experts = 1, vocab_local = 0;
  int64_t dispatch_rows = 0;  // R
};

// The arena's buffers (Workspace owns them).
struct WorkspaceBuffers {
  float* x = nullptr;              // [Ng, H] the residual stream
  float* h = nullptr;              // [Ng, H] normalized rows
  float* o = nullptr;              // [Ng, H] a block's output before the residual add
  float* xs = nullptr;             // [Ng, H] this rank's token slice of the residual (MoE)
  float* query = nullptr;          // [Ng, hq*D]
  float* attn = nullptr;           // [Ng, hq*D]
  float* key = nullptr;            // [Ng, kvl*D]
  float* value = nullptr;          // [Ng, kvl*D]
  float* gate = nullptr;           // [N, F] (dense MLP: Ng rows; experts: N*k pairs of I)
  float* up = nullptr;             // [N, F]
  float* act = nullptr;            // [N, F]
  float* down = nullptr;           // [N*k, H] the experts' outputs per pair
  float* rows = nullptr;           // [N*k, H] each pair's input row
  float* router_logits = nullptr;  // [Ng, E]
  float* topk_w = nullptr;         // [Ng, k]
  float* logits = nullptr;         // [Ng, Vl]
  int32_t* token_ids = nullptr;    // [Ng]
  int32_t* positions = nullptr;    // [Ng]
  int32_t* token_seq = nullptr;    // [Ng]
  int32_t* slots = nullptr;        // [Ng]
  int32_t* topk_ids = nullptr;     // [Ng, k]
  int32_t* moe_pos = nullptr;      // [R*k] where each (row, j) pair went
  int32_t* moe_idx = nullptr;      // [R*k] each sorted pair's row
  int32_t* moe_offsets = nullptr;  // [E+1]
  int32_t* moe_active = nullptr;   // [E]
  int32_t* logit_rows = nullptr;   // [Ng]
  int32_t* tables = nullptr;       // [table entries] block tables (their own arena)
};

// Lays the buffers of `shape` out from `base` (null: sizes only) and returns the arena's bytes.
size_t carve_workspace(WorkspaceBuffers& buffers, char* base, const WorkspaceShape& shape);

class Workspace : public WorkspaceBuffers {
 public:
  explicit Workspace(Backend& backend) : backend_(backend) {}
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // Frees the old arena and carves one for `shape` (contents undefined).
  void allocate(const WorkspaceShape& shape);
  // Block tables for at least `entries` int32 (grows by doubling; contents undefined). True
  // when it reallocated.
  bool reserve_tables(int64_t entries);
  int64_t tokens() const { return shape_.tokens; }
  // The arena's bytes for `shape` (memory planning: inspect, serve's KV budget).
  static size_t arena_bytes(const WorkspaceShape& shape) {
    WorkspaceBuffers none;
    return carve_workspace(none, nullptr, shape);
  }
  int64_t dispatch_rows() const { return shape_.dispatch_rows; }

 private:
  Backend& backend_;
  WorkspaceShape shape_;
  void* arena_ = nullptr;
  void* tables_arena_ = nullptr;
  int64_t table_capacity_ = 0;
};

}  // namespace qwen3moe
