// The one-rank communicator for buffers in a backend's memory: the collectives that move data
// (send and receive differ) become Backend::copy, the others nothing. The CUDA backend at
// world 1 uses it; the host one (make_local_communicator) would memmove device pointers.
#pragma once

#include <memory>

#include "kernels/backend.h"
#include "parallel/comm/communicator.h"

namespace qwen3moe {

// `backend` must outlive the result.
std::unique_ptr<Communicator> make_local_device_communicator(Backend& backend);

}  // namespace qwen3moe
