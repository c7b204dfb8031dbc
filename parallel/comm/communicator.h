// Collectives between the ranks of one job. The model calls these at the marked points of a
// step (README "Across ranks"); with one rank they are local copies.
// Counts are in elements of the stated type; buffers are backend memory of the caller's
// backend (host for the CPU backend).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace qwen3moe {

// Where in a run the next collectives belong, for hang forensics: the step (set by the
// generation loop), the layer and the phase (set by the model and the dispatcher).
struct CollectiveContext {
  int64_t step = -1;
  int64_t layer = -1;
  const char* phase = "";  // a string literal
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  void set_step(int64_t step) { context_.step = step; }
  void set_phase(int64_t layer, const char* phase) {
    context_.layer = layer;
    context_.phase = phase;
  }
  const CollectiveContext& context() const { return context_; }

  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In-place sum over all ranks of buf[n].
  virtual void all_reduce_sum(float* buf, size_t n) = 0;
  // send[size() * n] summed over ranks; rank r receives the r-th block of n into recv[n].
  virtual void reduce_scatter_sum(const float* send, float* recv, size_t n) = 0;
  // Each rank contributes send[bytes]; recv[size() * bytes] holds them in rank order.
  virtual void all_gather(const void* send, void* recv, size_t bytes) = 0;
  // Per-peer byte counts and offsets (arrays of size()); what rank r sends to rank p arrives at
  // rank p at recv + recv_offsets[r].
  virtual void all_to_all_v(const void* send, const size_t* send_bytes, const size_t* send_offsets,
                            void* recv, const size_t* recv_bytes, const size_t* recv_offsets) = 0;
  virtual void broadcast(void* buf, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Collective over this communicator: the ranks that pass the same color form a new
  // communicator, ranked by key (attention data parallelism: one per DP group of tp ranks).
  // Communicators over host memory split (MPI, local); those over backend memory are built
  // anew over a split host communicator (launcher/model_communicator.h). Error otherwise.
  virtual std::unique_ptr<Communicator> split(int color, int key);
  // Whether its collectives may be recorded into a backend graph (they are stream operations
  // that neither wait for nor touch the host: NCCL).
  virtual bool graph_capturable() const { return false; }

 private:
  CollectiveContext context_;
};

// The one-process communicator (world size 1).
std::unique_ptr<Communicator> make_local_communicator();

}  // namespace qwen3moe
