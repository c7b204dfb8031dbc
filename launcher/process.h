// This process's place in the job: the MPI session (when started by mpirun or srun), the world
// communicator, rank and size. Set up once in main; commands read it through process().
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "kernels/common/check.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe::launcher {

struct Process {
  std::shared_ptr<void> mpi;  // the MPI session, finalised when main returns
  std::unique_ptr<Communicator> comm;
  int rank = 0;
  int world = 1;
  bool root() const { return rank == 0; }
};

// Initialises MPI when launched by an MPI launcher (and built with MPI), else a one-rank job.
Process& init_process(int* argc, char*** argv);
Process& process();

// An error every rank of the job holds (the same message on all): main exits cleanly on it.
// Any other error on a multi-rank job aborts the job, since peers may wait in a collective.
class AgreedError : public Error {
 public:
  using Error::Error;
};

// Runs fn on every rank; if it throws on any rank, every rank throws AgreedError carrying the
// message of the lowest failing rank ("rank K: ..." when it was not this one).
void run_collectively(const std::function<void()>& fn);

// Puts a watchdog on every collective of a multi-rank MPI job (collective, once, after the
// flags are parsed): past timeout_seconds the job ends naming the collective and the ranks
// that did not arrive. A no-op on one rank or with timeout_seconds <= 0.
void enable_collective_watchdog(double timeout_seconds);

// "[rank K] " on multi-rank jobs, "" otherwise: the prefix of every line a rank prints.
std::string rank_prefix();

// Ends the job after an error: clean exit when every rank agrees, MPI_Abort otherwise.
[[noreturn]] void fail_job(bool agreed);

}  // namespace qwen3moe::launcher
