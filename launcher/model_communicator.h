// --comm: which communicator carries the model's collectives on backend memory. The CPU
// backend's memory is host memory, so the process's MPI (or one-rank) communicator serves it.
// The CUDA backend's memory is device memory, which the Debian MPI cannot read:
//   auto  NCCL when it is built and no two ranks share a GPU, else host-staged MPI
//   mpi   host-staged MPI (device -> pinned host -> MPI -> device)
//   nccl  NCCL, or an error naming why it cannot run
// and with one rank, device-to-device copies (NCCL too when `--comm nccl` is asked).
#pragma once

#include <memory>
#include <string>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe::launcher {

// Collective over `host` (every rank must call it with the same choice and backend kind);
// `device` is the CUDA device this rank's backend runs on. nullptr: use `host` itself (CPU
// backend). Errors name the bad choice and the reason.
std::unique_ptr<Communicator> make_model_communicator(const std::string& choice, Backend& backend,
                                                      int device, Communicator& host);

}  // namespace qwen3moe::launcher
