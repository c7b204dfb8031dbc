// Hang forensics: a collective that does not complete within the timeout must not hang the
// job. Every rank records the collective it is in and the last it completed; a thread per rank
// answers its peers' questions about that. When a rank has waited past the timeout it asks
// every peer where it is, names the collective and the ranks that did not arrive (with their
// last completed collective) in one line, and ends the job. Needs MPI_THREAD_MULTIPLE.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "parallel/comm/communicator.h"

namespace qwen3moe {

class CollectiveWatchdog {
 public:
  // Starts the watchdog thread; collective on construction (duplicates MPI_COMM_WORLD).
  explicit CollectiveWatchdog(double timeout_seconds);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // The MPI communicator brackets every collective with these.
  void enter(const char* op, const CollectiveContext& context);
  void leave();

  // Wire format of one rank's state (also what a query answers).
  struct State {
    int64_t entered = 0;    // collectives entered so far (sequence number of the current)
    int64_t completed = 0;  // collectives completed
    int32_t inside = 0;     // 1 while in a collective
    int32_t pad = 0;
    int64_t step = -1, layer = -1;  // of the current (or last) collective
    char op[24] = {};
    char phase[24] = {};
    int64_t last_step = -1, last_layer = -1;  // of the last completed one
    char last_op[24] = {};
    char last_phase[24] = {};
    double waited_s = 0;
  };

 private:
  void run();
  void report_hang();
  State snapshot() const;

  double timeout_s_;
  int rank_ = 0, world_ = 1;
  void* comm_ = nullptr;  // MPI_Comm (a dup of the world), opaque here
  mutable std::mutex mu_;
  State state_;
  std::chrono::steady_clock::time_point entered_at_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace qwen3moe
