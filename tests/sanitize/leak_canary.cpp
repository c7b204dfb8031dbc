// The sanitizer job's proof that its leak suppressions (lsan.supp) hide only the libraries'
// memory: under MPI, with OpenMP threads running, a leak allocated in our frames must still be
// reported. Modes: "clean" leaks nothing (must pass: the suppressions cover OpenMPI's own
// memory), "main" leaks on the main thread, "omp" leaks inside an OpenMP parallel region (whose
// frames sit under libgomp's, so a suppression by library would hide it).
// usage: mpirun -np 2 leak_canary clean|main|omp
#include <omp.h>

#include <cstdio>
#include <cstring>

#include "parallel/comm/mpi/mpi_communicator.h"

namespace {
int* volatile g_sink = nullptr;  // the allocation escapes through here, then is dropped

__attribute__((noinline)) void leak_canary_allocation() {
  g_sink = new int[64]();
  g_sink[0] = 1;
  g_sink = nullptr;
}
}  // namespace

int main(int argc, char** argv) {
  qwen3moe::MpiSession mpi(&argc, &argv);
  auto world = qwen3moe::make_mpi_communicator();
  const char* mode = argc > 1 ? argv[1] : "";
  float ranks = 1.0f;
  world->all_reduce_sum(&ranks, 1);  // the MPI stack is in use, as in every mpi test
  if (std::strcmp(mode, "main") == 0) {
    leak_canary_allocation();
  } else if (std::strcmp(mode, "omp") == 0) {
#pragma omp parallel num_threads(2)
    {
      if (omp_get_thread_num() == 1) leak_canary_allocation();
    }
  } else if (std::strcmp(mode, "clean") != 0) {
    std::fprintf(stderr, "leak_canary: mode must be clean, main or omp, got '%s'\n", mode);
    return 2;
  }
  std::printf("leak_canary %s: rank %d of %.0f\n", mode, world->rank(), ranks);
  return 0;
}
