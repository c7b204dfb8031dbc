#include "launcher/process.h"

#include <cstdlib>
#include <vector>

#ifdef QWEN3MOE_HAVE_MPI
#include "parallel/comm/mpi/mpi_communicator.h"
#endif

namespace qwen3moe::launcher {
namespace {
Process* g_process = nullptr;
}

Process& init_process(int* argc, char*** argv) {
  static Process p;
#ifdef QWEN3MOE_HAVE_MPI
  if (launched_by_mpi()) {
    p.mpi = std::make_shared<MpiSession>(argc, argv);
    p.comm = make_mpi_communicator();
  }
#endif
  if (!p.comm) p.comm = make_local_communicator();
  p.rank = p.comm->rank();
  p.world = p.comm->size();
  g_process = &p;
  return p;
}

Process& process() {
  QWEN3MOE_CHECK(g_process != nullptr, "process not initialised");
  return *g_process;
}

void enable_collective_watchdog(double timeout_seconds) {
  Process& p = process();
  if (p.world == 1 || timeout_seconds <= 0) return;
#ifdef QWEN3MOE_HAVE_MPI
  if (p.mpi) p.comm = make_mpi_communicator(timeout_seconds);
#endif
}

std::string rank_prefix() {
  if (!g_process || g_process->world == 1) return "";
  return "[rank " + std::to_string(g_process->rank) + "] ";
}

void run_collectively(const std::function<void()>& fn) {
  std::string error;
  try {
    fn();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "unknown error";
  }
  Process& p = process();
  if (p.world == 1) {
    if (!error.empty()) throw AgreedError(error, __FILE__, __LINE__);
    return;
  }
  // Which ranks failed, then the lowest one's message to everyone.
  const int mine = error.empty() ? 0 : 1;
  std::vector<int> failed(size_t(p.world));
  p.comm->all_gather(&mine, failed.data(), sizeof(int));
  int first = -1;
  for (int r = 0; r < p.world && first < 0; ++r)
    if (failed[size_t(r)]) first = r;
  if (first < 0) return;
  uint64_t len = error.size();
  p.comm->broadcast(&len, sizeof(len), first);
  std::string message(len, '\0');
  if (p.rank == first) message = error;
  p.comm->broadcast(message.data(), len, first);
  // A rank that failed itself reports its own error; one that did not names the rank that did.
  if (!error.empty())
    message = error;
  else
    message = "rank " + std::to_string(first) + " failed: " + message;
  throw AgreedError(message, __FILE__, __LINE__);
}

void fail_job(bool agreed) {
  Process& p = process();
#ifdef QWEN3MOE_HAVE_MPI
  if (p.world > 1 && !agreed) MpiSession::abort_job(1);
#endif
  (void)p;
  (void)agreed;
  p.comm.reset();
  p.mpi.reset();  // MPI_Finalize: every rank reached here together
  std::exit(1);
}

}  // namespace qwen3moe::launcher
