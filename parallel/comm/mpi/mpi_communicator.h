// Communicator over MPI for host buffers (the CPU backend, tests under mpirun). MPI is started
// and finished by MpiSession; the communicator wraps MPI_COMM_WORLD.
#pragma once

#include <memory>

#include "parallel/comm/communicator.h"

namespace qwen3moe {

// True when this process was started by mpirun / srun (an MPI launcher's environment).
bool launched_by_mpi();

// MPI_Init_thread on construction, MPI_Finalize on destruction. Errors return codes (never
// abort inside MPI) so every failure becomes an Error naming the call.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  // Ends every rank of the job now (a rank failed while others may wait in a collective).
  [[noreturn]] static void abort_job(int code);
};

// collective_timeout_seconds > 0: a collective that has not completed after this long ends the
// job with a message naming it and the ranks that did not arrive (CollectiveWatchdog).
std::unique_ptr<Communicator> make_mpi_communicator(double collective_timeout_seconds = 0);

}  // namespace qwen3moe
