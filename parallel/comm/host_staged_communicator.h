// Collectives on device buffers for an MPI that cannot read device memory: each call copies
// the device buffers to host staging buffers (Backend::download), runs the same collective on
// the host communicator, and copies the result back (Backend::upload). This is what runs when
// several ranks share one GPU (NCCL refuses that) or when `--comm mpi` is asked; with the CPU
// backend the copies are memcpy, which is how the tests check it without a GPU.
#pragma once

#include <memory>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe {

// `host` carries the host buffers (the MPI world); both must outlive the result. The layer and
// phase set on the result are passed on to `host` before each call (its collective watchdog
// names them); the step stays the one the generation loop set on `host`.
std::unique_ptr<Communicator> make_host_staged_communicator(Communicator& host, Backend& backend);

}  // namespace qwen3moe
