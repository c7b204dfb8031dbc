// Collectives on device buffers over NCCL: one GPU per rank (the CUDA backend's), every call
// enqueued on the backend's stream so it runs after the ops that wrote its buffers and before
// the ops that read them; the host does not wait except in barrier(). Built when CUDA and NCCL
// are found (QWEN3MOE_HAVE_NCCL). The ranks meet through a host communicator (the MPI world):
// rank 0 makes NCCL's unique id and broadcasts it.
#pragma once

#include <memory>
#include <string>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe {

// Collective over `host`. `backend` must be a CUDA backend whose device is current on this
// thread; both must outlive the result. Error (on every rank, with rank 0's message) when NCCL
// cannot make the unique id; NCCL's own message when the communicator cannot be built.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, Backend& backend);

// NCCL refuses two ranks on one GPU. Collective over `host`: every rank's host name and the
// PCI bus id of its `device`; "" when no two ranks share a GPU, else a reason naming the first
// pair ("ranks 0 and 1 share GPU 0000:1b:00.0 on host gpu7").
std::string shared_gpu_reason(Communicator& host, int device);

}  // namespace qwen3moe
